import { FerryError } from './errors.js';

/**
 * How the consumer runtime retries a failing handler: exponential backoff with jitter, up to
 * `maxAttempts` runs in all, then the message is dead-lettered. A `PermanentError` skips the
 * remaining attempts.
 */
export interface RetryPolicy {
  /** Handler runs at most this many times before the message is dead-lettered. Default 5. */
  readonly maxAttempts: number;
  /** Wait before the second attempt. Default 200 ms. */
  readonly initialDelayMs: number;
  /** Cap on any one wait. Default 30 s. */
  readonly maxDelayMs: number;
  /** Growth per attempt. Default 2. */
  readonly factor: number;
  /** Fraction of each wait that is random, so many consumers do not retry in step. Default 0.2. */
  readonly jitter: number;
}

/** The policy used where none is given: 5 attempts, 200 ms doubling up to 30 s, 20% jitter. */
export const DEFAULT_RETRY: RetryPolicy = {
  maxAttempts: 5,
  initialDelayMs: 200,
  maxDelayMs: 30_000,
  factor: 2,
  jitter: 0.2,
};

export function resolveRetry(overrides: Partial<RetryPolicy> | undefined): RetryPolicy {
  const policy = { ...DEFAULT_RETRY, ...overrides };
  if (!Number.isInteger(policy.maxAttempts) || policy.maxAttempts < 1) {
    throw new FerryError('INVALID_ARGUMENT', 'retry.maxAttempts must be a whole number >= 1');
  }
  if (policy.initialDelayMs < 0 || policy.maxDelayMs < 0 || policy.factor < 1) {
    throw new FerryError('INVALID_ARGUMENT', 'retry delays must be >= 0 and factor >= 1');
  }
  if (policy.jitter < 0 || policy.jitter > 1) {
    throw new FerryError('INVALID_ARGUMENT', 'retry.jitter must be between 0 and 1');
  }
  return policy;
}

/** Wait after failed attempt `attempt` (1-based): exponential, capped, with jitter. */
export function backoffDelay(policy: RetryPolicy, attempt: number): number {
  const base = Math.min(
    policy.maxDelayMs,
    policy.initialDelayMs * policy.factor ** Math.max(0, attempt - 1),
  );
  const spread = base * policy.jitter;
  return Math.max(0, Math.round(base - spread + Math.random() * 2 * spread));
}

/** Resolves after `ms`, or rejects with `CLOSED` as soon as `signal` aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(new FerryError('CLOSED', 'Closed while waiting'));
      return;
    }
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(new FerryError('CLOSED', 'Closed while waiting'));
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/** Resolves after `ms`, or at once when `signal` aborts (for loops that check it themselves). */
export function pause(ms: number, signal?: AbortSignal): Promise<void> {
  if (signal?.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    const done = (): void => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener('abort', done, { once: true });
  });
}
