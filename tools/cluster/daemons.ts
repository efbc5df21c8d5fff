/**
 * Starting and stopping the daemons of a set. A daemon runs in foreground mode (`-f`) as a
 * detached child, so the recorded pid is the daemon itself; stopping signals exactly those pids,
 * each verified through /proc/<pid>/cmdline to be a Ceph daemon started with its cluster's conf.
 * A daemon of another release (release.ts) is started through a short chain of execs
 * (unshare, sh, chroot, sh) that ends in the daemon with the same pid.
 */
import { spawn } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync, readdirSync, rmSync, rmdirSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { cephCmd, childEnv, sleep, tail } from './exec.js';
import { inRoot, WRAPPER_BINARIES, WRAPPER_MARK } from './release.js';
import { readState, statePath, writeJsonAtomic } from './state.js';
import { DEFAULT_DIR, type ClusterInfo, type StateFile } from './types.js';

export const DAEMON_BINARIES = new Set(['ceph-mon', 'ceph-mgr', 'ceph-osd', 'rbd-mirror']);

/** The state letter of /proc/<pid>/stat (or /proc/<pid>/task/<tid>/stat with `tid`): 'R', 'S', 'T', 'Z', …. */
export function procState(pid: number, tid?: number): string | undefined {
  try {
    const stat = readFileSync(tid === undefined ? `/proc/${pid}/stat` : `/proc/${pid}/task/${tid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0];
  } catch {
    return undefined;
  }
}

/**
 * True if pid is a live (non-zombie) Ceph daemon started with this cluster's conf — or, for a
 * chroot'ed one, still one of the wrapper stages that exec into it (argv naming a daemon and the conf).
 */
export function isOurDaemon(pid: number | undefined, conf: string): boolean {
  if (!pid || pid <= 1) return false;
  const st = procState(pid);
  if (st === undefined || st === 'Z' || st === 'X') return false;
  let argv: string[];
  try {
    argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean);
  } catch {
    return false;
  }
  if (argv.length === 0 || !argv.includes(conf)) return false;
  const bin = basename(argv[0]);
  if (DAEMON_BINARIES.has(bin)) return true;
  return WRAPPER_BINARIES.has(bin) && argv.includes(WRAPPER_MARK) && argv.some((a) => DAEMON_BINARIES.has(a));
}

export function daemonPids(info: ClusterInfo): [string, number | undefined][] {
  return [['mirror', info.pids.mirror], ['osd', info.pids.osd], ['mgr', info.pids.mgr], ['mon', info.pids.mon]];
}

export interface Spawned { pid: number; exited: () => { code: number | null; signal: string | null } | undefined }

/**
 * Starts a daemon detached, in foreground mode, stdout/stderr appended to log/<label>.out; from the
 * chroot `root` (default the host) with the cluster directory bind-mounted at the same path.
 */
export function spawnDaemon(cdir: string, conf: string, label: string, bin: string, args: string[], root = '/'): Spawned {
  const out = openSync(join(cdir, 'log', `${label}.out`), 'a');
  let exit: { code: number | null; signal: string | null } | undefined;
  try {
    const [file, argv] = inRoot(root, bin, [...args, '-c', conf], { binds: [{ src: cdir }], cwd: cdir });
    const child = spawn(file, argv, {
      detached: true, stdio: ['ignore', out, out], env: childEnv(conf), cwd: cdir,
    });
    if (child.pid === undefined) throw new Error(`failed to start ${bin}`);
    child.on('exit', (code, signal) => { exit = { code, signal }; });
    child.on('error', () => { exit = { code: -1, signal: null }; });
    child.unref();
    return { pid: child.pid, exited: () => exit };
  } finally {
    closeSync(out);
  }
}

export function readPidFile(path: string): number | undefined {
  try {
    const n = Number.parseInt(readFileSync(path, 'utf8').trim(), 10);
    return Number.isFinite(n) && n > 1 ? n : undefined;
  } catch {
    return undefined;
  }
}

export function spawnMirror(info: ClusterInfo): Spawned {
  return spawnDaemon(info.dir, info.conf, `client.${info.mirrorUser}`, 'rbd-mirror',
    ['-f', '--id', info.mirrorUser], info.root);
}

/** Sends `sig` to each pid that is verified to be one of our daemons; returns those signalled. */
export function signalVerified(pids: { pid: number; conf: string }[], sig: NodeJS.Signals): number[] {
  const hit: number[] = [];
  for (const { pid, conf } of pids) {
    if (!isOurDaemon(pid, conf)) continue;
    try {
      process.kill(pid, sig);
      hit.push(pid);
    } catch { /* gone */ }
  }
  return hit;
}

export async function stopPids(pids: { pid: number; conf: string }[], graceMs = 10_000): Promise<void> {
  let left = signalVerified(pids, 'SIGTERM').map((pid) => pids.find((p) => p.pid === pid)!);
  const deadline = Date.now() + graceMs;
  while (left.length > 0 && Date.now() < deadline) {
    await sleep(100);
    left = left.filter((p) => isOurDaemon(p.pid, p.conf));
  }
  if (left.length > 0) {
    signalVerified(left, 'SIGKILL');
    const d2 = Date.now() + 5_000;
    while (left.length > 0 && Date.now() < d2) {
      await sleep(100);
      left = left.filter((p) => isOurDaemon(p.pid, p.conf));
    }
  }
}

function removeSetFiles(dir: string, s: StateFile | undefined) {
  if (s) {
    for (const c of Object.values(s.clusters)) {
      // Only ever delete cluster dirs inside the set dir.
      if (resolve(c.dir).startsWith(resolve(dir) + '/')) rmSync(c.dir, { recursive: true, force: true });
    }
  }
  rmSync(statePath(dir), { force: true });
  try {
    if (readdirSync(dir).length === 0) rmdirSync(dir);
  } catch { /* keep */ }
}

/**
 * Stops exactly the daemons recorded in `<dir>/state.json` (SIGTERM, SIGKILL after 10 s)
 * and removes the cluster directories.
 */
export async function down(dir: string = DEFAULT_DIR): Promise<void> {
  dir = resolve(dir);
  const s = readState(dir);
  if (!s) return;
  const pids = Object.values(s.clusters).flatMap((c) =>
    daemonPids(c).filter(([, p]) => !!p).map(([, p]) => ({ pid: p!, conf: c.conf })));
  await stopPids(pids);
  removeSetFiles(dir, s);
}

/**
 * Synchronous best-effort teardown for process 'exit' handlers: SIGKILLs the recorded,
 * verified daemons and removes the cluster directories.
 */
export function downSync(dir: string = DEFAULT_DIR): void {
  dir = resolve(dir);
  const s = readState(dir);
  if (!s) return;
  const pids = Object.values(s.clusters).flatMap((c) =>
    daemonPids(c).filter(([, p]) => !!p).map(([, p]) => ({ pid: p!, conf: c.conf })));
  signalVerified(pids, 'SIGKILL');
  removeSetFiles(dir, s);
}

/** Starts (or returns the pid of the running) rbd-mirror daemon of cluster `name` in set `dir`. */
export async function startMirrorDaemon(dir: string, name: string): Promise<number> {
  dir = resolve(dir);
  const s = readState(dir);
  const c = s?.clusters[name];
  if (!s || !c) throw new Error(`no cluster ${name} in ${dir}`);
  if (isOurDaemon(c.pids.mirror, c.conf)) return c.pids.mirror!;
  if (!existsSync(c.mirrorKeyring)) {
    await cephCmd(c.conf, ['auth', 'get-or-create', `client.${c.mirrorUser}`,
      'mon', 'profile rbd-mirror', 'osd', 'profile rbd', '-o', c.mirrorKeyring]);
  }
  const d = spawnMirror(c);
  await sleep(300);
  const ex = d.exited();
  if (ex) {
    throw new Error(`rbd-mirror for ${name} exited (${ex.code ?? ex.signal}):\n` +
      tail(join(c.dir, 'log', `client.${c.mirrorUser}.out`)));
  }
  // Re-read: another call may have updated the file meanwhile.
  const s2 = readState(dir) ?? s;
  s2.clusters[name].pids.mirror = d.pid;
  writeJsonAtomic(statePath(dir), s2);
  return d.pid;
}

/** Stops the rbd-mirror daemon of cluster `name` (if running) and forgets its pid. */
export async function stopMirrorDaemon(dir: string, name: string): Promise<void> {
  dir = resolve(dir);
  const s = readState(dir);
  const c = s?.clusters[name];
  if (!s || !c) throw new Error(`no cluster ${name} in ${dir}`);
  if (c.pids.mirror) await stopPids([{ pid: c.pids.mirror, conf: c.conf }]);
  const s2 = readState(dir) ?? s;
  delete s2.clusters[name].pids.mirror;
  writeJsonAtomic(statePath(dir), s2);
}
