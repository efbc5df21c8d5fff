/** Starting the watchdog process (watchdog.mjs) that tears a set down if its owner dies. */
import { spawn } from 'node:child_process';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DAEMON_BINARIES } from './daemons.js';
import { childEnv } from './exec.js';

const WATCHDOG_SCRIPT = fileURLToPath(new URL('./watchdog.mjs', import.meta.url));

/**
 * Starts a tiny detached watchdog (plain node, no deps) that tears the set in `dir` down with
 * SIGKILL if process `parentPid` disappears without having called `down` (e.g. the test runner
 * was SIGKILLed). May be started before `up` (the dir must exist). It exits by itself once the
 * dir, or a `<dir>/state.json` it has seen, is gone. Returns its pid.
 */
export function spawnWatchdog(dir: string, parentPid: number = process.pid): number {
  dir = resolve(dir);
  const child = spawn(process.execPath, [WATCHDOG_SCRIPT, String(parentPid), dir, JSON.stringify([...DAEMON_BINARIES])], {
    detached: true, stdio: 'ignore', env: childEnv(),
  });
  child.unref();
  return child.pid!;
}
