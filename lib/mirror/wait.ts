// Bounded polling shared by the image operations and the failover workflows.
import { codedError } from '../core/errors.js';
import { checkOptions, checkSignal, checkUint } from '../core/validate.js';
import type { WaitOptions } from './types.js';

export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(abortError(signal));
    const t = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(t);
      reject(abortError(signal!));
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

function abortError(signal: AbortSignal): Error {
  const e = codedError('ABORT_ERR', 'mirror wait aborted');
  e.name = 'AbortError';
  (e as Error & { cause?: unknown }).cause = signal.reason;
  return e;
}

export function checkWait(options: WaitOptions | undefined, what: string): Required<Pick<WaitOptions, 'timeoutMs' | 'pollMs'>> & WaitOptions {
  const o = checkOptions<WaitOptions>(options, what, ['timeoutMs', 'signal', 'pollMs', 'peer']);
  return {
    ...o,
    timeoutMs: o.timeoutMs === undefined ? 120_000 : checkUint(o.timeoutMs, 'timeoutMs', { min: 1 }),
    pollMs: o.pollMs === undefined ? 500 : checkUint(o.pollMs, 'pollMs', { min: 10, max: 60_000 }),
    signal: checkSignal(o.signal),
  };
}

/** Polls `check` until it returns a value, bounded by timeout and signal. */
export async function poll<T>(
  o: { timeoutMs: number; pollMs: number; signal?: AbortSignal },
  what: string,
  check: () => Promise<T | undefined>,
  lastState: () => string,
): Promise<T> {
  const deadline = Date.now() + o.timeoutMs;
  for (;;) {
    if (o.signal?.aborted) throw abortError(o.signal);
    const v = await check();
    if (v !== undefined) return v;
    if (Date.now() >= deadline) {
      throw codedError('ETIMEDOUT', `${what}: not done after ${o.timeoutMs} ms (last state: ${lastState()})`, { operation: what });
    }
    await sleep(Math.min(o.pollMs, Math.max(1, deadline - Date.now())), o.signal);
  }
}
