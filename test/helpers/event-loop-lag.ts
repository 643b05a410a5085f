// Samples a worker's event-loop delay from outside, through `GET /metrics`: prom-client's default
// metrics report the delay histogram since the previous scrape (`nodejs_eventloop_lag_max_seconds`,
// `..._p99_seconds`) and reset it, so scraping at a steady pace and keeping the largest values gives
// the worst delay over the whole run.

export interface LagSummary {
  /** Largest `nodejs_eventloop_lag_max_seconds` over the sampled scrapes. */
  maxSeconds: number;
  /** Largest `nodejs_eventloop_lag_p99_seconds` over the sampled scrapes. */
  p99Seconds: number;
  scrapes: number;
}

function gauge(text: string, name: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${name} `) || l.startsWith(`${name}{`));
  return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(' ') + 1));
}

async function scrape(url: string): Promise<{ max: number; p99: number }> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const max = gauge(text, 'nodejs_eventloop_lag_max_seconds');
  const p99 = gauge(text, 'nodejs_eventloop_lag_p99_seconds');
  if (max === undefined || p99 === undefined)
    throw new Error(`${url}/metrics has no nodejs_eventloop_lag_max_seconds / _p99_seconds`);
  return { max, p99 };
}

/**
 * Starts sampling `workerUrl` every `everyMs`; the first scrape only resets the histogram (it holds
 * whatever happened before, such as start-up). `stop()` takes a last sample and returns the summary.
 */
export async function sampleEventLoopLag(
  workerUrl: string,
  everyMs = 200,
): Promise<{ stop: () => Promise<LagSummary> }> {
  await scrape(workerUrl);
  const summary: LagSummary = { maxSeconds: 0, p99Seconds: 0, scrapes: 0 };
  let failure: unknown;
  const take = async () => {
    try {
      const { max, p99 } = await scrape(workerUrl);
      summary.maxSeconds = Math.max(summary.maxSeconds, max);
      summary.p99Seconds = Math.max(summary.p99Seconds, p99);
      summary.scrapes++;
    } catch (error) {
      failure ??= error;
    }
  };
  let pending: Promise<void> = Promise.resolve();
  const timer = setInterval(() => {
    pending = pending.then(take);
  }, everyMs);
  return {
    async stop() {
      clearInterval(timer);
      await pending;
      await take();
      if (failure !== undefined) throw failure as Error;
      return summary;
    },
  };
}
