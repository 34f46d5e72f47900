import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/** Runs a TypeScript fixture from test/fixtures in a child process (through tsx). */
export function runFixture(name: string, args: readonly string[]): ChildProcess {
  const file = fileURLToPath(new URL(`../fixtures/${name}`, import.meta.url));
  return fork(file, [...args], { execArgv: ['--import', 'tsx'], stdio: 'inherit' });
}

/** Resolves when the child sends 'ready' (or rejects if it exits first). */
export function ready(child: ChildProcess): Promise<void> {
  return new Promise((resolve, reject) => {
    child.once('message', () => resolve());
    child.once('exit', (code) =>
      reject(new Error(`child exited with ${code} before it was ready`)),
    );
  });
}

export function exited(child: ChildProcess): Promise<number | null> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(child.exitCode);
  return new Promise((resolve) => child.once('exit', (code) => resolve(code)));
}
