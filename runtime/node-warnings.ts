// kafkajs 2.2 schedules some timers with negative delays (its request-timeout bookkeeping), which
// Node >= 22 reports as TimeoutNegativeWarning on every start. The timers behave as intended (Node
// runs them after 1 ms), so that one warning is dropped; every other warning is still printed.
const emitWarning = process.emitWarning.bind(process);

export function silenceKafkajsTimerWarnings(): void {
  process.emitWarning = ((warning: string | Error, ...rest: unknown[]) => {
    const type = typeof rest[0] === 'string' ? rest[0] : (rest[0] as { type?: string } | undefined)?.type;
    if (
      type === 'TimeoutNegativeWarning' ||
      (warning instanceof Error && warning.name === 'TimeoutNegativeWarning')
    ) {
      return;
    }
    (emitWarning as (...args: unknown[]) => void)(warning, ...rest);
  }) as typeof process.emitWarning;
}
