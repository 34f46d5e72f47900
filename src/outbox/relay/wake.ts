// The relay's idle wait: a pause between polls that a wake-up (or stopping) cuts short. A
// wake-up that comes while no pause runs is kept, so the next pause ends at once.
export interface Waker {
  /** Waits up to `ms`, or not at all when woken meanwhile or no longer running. */
  readonly pause: (ms: number) => Promise<void>;
  /** Ends the pause under way, or the next one. */
  readonly wake: () => void;
}

/** A {@link Waker}; its pauses end at once when `running()` is false. */
export function waker(running: () => boolean): Waker {
  let wakeUp: (() => void) | undefined;
  let woken = false;
  return {
    pause: (ms) =>
      new Promise((resolve) => {
        if (woken || !running()) {
          woken = false;
          resolve();
          return;
        }
        const timer = setTimeout(finish, ms);
        function finish(): void {
          clearTimeout(timer);
          wakeUp = undefined;
          woken = false;
          resolve();
        }
        wakeUp = finish;
      }),
    wake() {
      woken = true;
      wakeUp?.();
    },
  };
}
