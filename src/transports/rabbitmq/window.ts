/** A counting semaphore with first-come-first-served waiters: the publish in-flight window. */
export class Window {
  private used = 0;
  private readonly waiters: Array<() => void> = [];

  constructor(private readonly size: number) {}

  acquire(): Promise<void> | undefined {
    if (this.used < this.size && this.waiters.length === 0) {
      this.used++;
      return undefined;
    }
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  release(): void {
    const next = this.waiters.shift();
    if (next) next();
    else this.used--;
  }
}
