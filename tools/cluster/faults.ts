/** Fault injection for tests: signalling a daemon, restarting a killed OSD. */
import { readdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { isOurDaemon, procState, signalVerified, spawnDaemon } from './daemons.js';
import { cephCmd, sleep, tail } from './exec.js';
import { readState, statePath, writeJsonAtomic } from './state.js';
import type { ClusterPids } from './types.js';

function clusterOf(dir: string, name: string) {
  const c = readState(resolve(dir))?.clusters[name];
  if (!c) throw new Error(`no cluster ${name} in ${dir}`);
  return c;
}

/**
 * Sends `signal` to one daemon of cluster `name` (verified to be ours); for fault tests, e.g.
 * SIGSTOP/SIGCONT of the OSD to simulate a hung one. Returns false if it is not running.
 */
export function signalDaemon(dir: string, name: string, daemon: keyof ClusterPids, signal: NodeJS.Signals): boolean {
  const c = clusterOf(dir, name);
  return signalVerified([{ pid: c.pids[daemon] ?? 0, conf: c.conf }], signal).length === 1;
}

/**
 * SIGSTOPs one daemon of cluster `name` and resolves once every thread of it is stopped (state T).
 * kill() returns before that: each thread stops on its own way back to user space, and on a loaded
 * machine a test could otherwise send its next op while the daemon was not yet fully stopped.
 */
export async function stopDaemon(dir: string, name: string, daemon: keyof ClusterPids, timeoutMs = 10_000): Promise<void> {
  if (!signalDaemon(dir, name, daemon, 'SIGSTOP')) throw new Error(`${daemon} of ${name} is not running`);
  const pid = clusterOf(dir, name).pids[daemon]!;
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const running = readdirSync(`/proc/${pid}/task`).filter((tid) => !/^[Tt]$/.test(procState(pid, Number(tid)) ?? 'T'));
    if (running.length === 0) return;
    if (Date.now() > deadline) throw new Error(`${daemon} of ${name} (pid ${pid}): threads ${running.join(', ')} not stopped after ${timeoutMs} ms`);
    await sleep(5);
  }
}

/**
 * Starts the OSD of cluster `name` again after it died or was killed (fault tests: SIGKILL, then
 * this; with bluestore the OSD comes back with its data). Returns the new pid once the OSD is
 * marked up in the osdmap again.
 */
export async function restartOsd(dir: string, name: string, timeoutMs = 60_000): Promise<number> {
  dir = resolve(dir);
  const c = clusterOf(dir, name);
  const deadline = Date.now() + timeoutMs;
  while (isOurDaemon(c.pids.osd, c.conf)) {
    if (Date.now() > deadline) throw new Error(`osd.0 of ${name} (pid ${c.pids.osd}) is still running`);
    await sleep(50);
  }
  const d = spawnDaemon(c.dir, c.conf, 'osd.0', 'ceph-osd', ['-f', '-i', '0'], c.root);
  const s2 = readState(dir)!;
  s2.clusters[name].pids.osd = d.pid;
  writeJsonAtomic(statePath(dir), s2);
  // Up once the osdmap shows this instance (a new boot epoch) as up.
  const bootedAfter = Date.now();
  for (;;) {
    const ex = d.exited();
    if (ex) throw new Error(`osd.0 of ${name} exited (${ex.code ?? ex.signal}) on restart:\n${tail(join(c.dir, 'log', 'osd.0.log'))}`);
    const r = await cephCmd(c.conf, ['osd', 'dump', '--format', 'json'], 15_000).catch(() => undefined);
    const o = r && (JSON.parse(r.stdout) as { osds: { osd: number; up: number; up_from: number }[]; epoch: number });
    const me = o?.osds.find((x) => x.osd === 0);
    if (me?.up && isOurDaemon(d.pid, c.conf) && (await osdAnswers(c.conf))) return d.pid;
    if (Date.now() > deadline) throw new Error(`osd.0 of ${name} not up ${Date.now() - bootedAfter} ms after restart`);
    await sleep(250);
  }
}

async function osdAnswers(conf: string): Promise<boolean> {
  return cephCmd(conf, ['tell', 'osd.0', 'version'], 5_000).then(() => true, () => false);
}
