// One queue of operations per key (the worker keys it by connector name): an operation starts only
// after every operation queued before it under the same key has settled, whatever their outcome.
// Keys are independent, so a slow restart of one connector never delays another connector.

export class KeyedSerialQueue {
  /** The last queued operation of each key with work queued, settled-safe (never rejects). */
  private readonly tails = new Map<string, Promise<void>>();

  /** Runs `operation` after the operations already queued under `key`; settles as it does. */
  run<T>(key: string, operation: () => Promise<T>): Promise<T> {
    const previous = this.tails.get(key) ?? Promise.resolve();
    const result = previous.then(operation);
    const tail = result.then(
      () => undefined,
      () => undefined,
    );
    this.tails.set(key, tail);
    void tail.then(() => {
      if (this.tails.get(key) === tail) this.tails.delete(key);
    });
    return result;
  }
}
