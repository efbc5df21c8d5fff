// The failback commands' writer check: the operator confirms that the writers of the site in use
// are stopped (flag, or a terminal prompt) before the last step; without it nothing is done.
import { createInterface } from 'node:readline/promises';
import { controller } from '../action.js';

/** Writers of the source were not confirmed stopped: nothing was done (exit code 4, as a safety refusal). */
export class WritersNotStopped extends Error {
  code = 'ERR_WRITERS_NOT_STOPPED';
  constructor(message: string) {
    super(`ERR_WRITERS_NOT_STOPPED: ${message}`); // as codedError's messages
  }
}

/**
 * How the writers are known to be stopped, decided before anything is done: the flag, or a
 * prompt later (stdin a terminal). Neither: refused now, so nothing is copied or demoted.
 */
export function writersMode(o: Record<string, unknown>, label: string, before: string): 'flag' | 'confirmed' {
  if (o.writersStopped) return 'flag';
  if (process.stdin.isTTY) return 'confirmed';
  throw new WritersNotStopped(`failback needs the writers of ${label} stopped before ${before}: pass --writers-stopped once they are, or run it on a terminal to be asked`);
}

/** Asks on the terminal; anything but yes is a refusal. `left`: the state things stay in then. */
export async function confirmWritersStopped(source: string, left = 'A is as the first sync left it'): Promise<void> {
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  const onAbort = () => rl.close();
  controller.signal.addEventListener('abort', onAbort, { once: true });
  try {
    const answer = await rl.question(`Stop every writer of ${source} now (VMs, mappings, clients), then type 'yes' to continue: `);
    if (!/^y(es)?$/i.test(answer.trim())) throw new WritersNotStopped(`failback stopped: writers of ${source} not confirmed stopped (answer was not 'yes'); ${left}`);
  } catch (e) {
    if (e instanceof WritersNotStopped) throw e;
    controller.signal.throwIfAborted();
    throw new WritersNotStopped(`failback stopped: no confirmation that the writers of ${source} are stopped (${(e as Error).message})`);
  } finally {
    controller.signal.removeEventListener('abort', onAbort);
    rl.close();
  }
}

