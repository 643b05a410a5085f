// Retry timing shared by every retry loop of the runtime: capped exponential backoff starting at
// Kafka Connect's 300 ms, and sleeps that end early when the task is asked to stop.

export const INITIAL_RETRY_DELAY_MS = 300;

/** Delay before retry number `attempt` (1-based): 300, 600, 1200, ... capped at `maxDelayMs`. */
export function backoffDelay(attempt: number, maxDelayMs: number): number {
  const exponential = INITIAL_RETRY_DELAY_MS * 2 ** Math.max(0, attempt - 1);
  return Math.max(0, Math.min(exponential, maxDelayMs));
}

/** Resolves after `ms`, or early (without throwing) when `signal` aborts. Returns false if aborted. */
export function interruptibleSleep(ms: number, signal: AbortSignal): Promise<boolean> {
  if (signal.aborted) return Promise.resolve(false);
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve(true);
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      resolve(false);
    };
    signal.addEventListener('abort', onAbort, { once: true });
  });
}
