/**
 * vstart-like local Ceph clusters for rbd-stream development and tests (no containers).
 *
 * Each cluster is fully independent (own fsid, own directory, own mon port) and consists of
 * one mon (id a), one mgr (id x), one memstore OSD (id 0) and optionally one rbd-mirror daemon.
 * Daemons run in foreground mode (`-f`) as detached children, so the recorded pid is the
 * daemon itself; `down` stops exactly those pids (verified through /proc/<pid>/cmdline).
 *
 * Library:  import { up, down, status } from './tools/cluster/index.ts'
 * CLI:      npm run cluster -- up|down|status [--dir D] [--names a,b] [--osd-mb N] [--mirror] [--fast-mon] [--osd-op-threads N]
 *                                  [--base-port P] [--json]
 *
 * Only Node built-ins are used. Secrets (keys) are written to files with mode 0600, never printed.
 */
import { execFile, spawn } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import {
  closeSync, existsSync, mkdirSync, openSync, readFileSync, readdirSync, renameSync, rmSync,
  rmdirSync, writeFileSync,
} from 'node:fs';
import { createServer } from 'node:net';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

// ---------------------------------------------------------------------------------------------
// Types

export interface ClusterPids {
  mon: number;
  mgr: number;
  osd: number;
  mirror?: number;
}

export interface ClusterInfo {
  name: string;
  /** This cluster's directory (`<set dir>/<name>`). */
  dir: string;
  /** Absolute path of ceph.conf; `rbd -c <conf> ...` works with it alone (it names the keyring). */
  conf: string;
  /** Absolute path of the client.admin keyring. */
  keyring: string;
  user: 'admin';
  fsid: string;
  /** Monitor address, e.g. `v2:127.0.0.1:40123`. */
  monAddr: string;
  port: number;
  pids: ClusterPids;
  /** rbd-mirror user of this cluster (`rbd-mirror.<name>`) and its keyring. */
  mirrorUser: string;
  mirrorKeyring: string;
}

export interface ClusterSet {
  dir: string;
  clusters: Record<string, ClusterInfo>;
}

export interface UpOptions {
  /** Directory holding the set; default `<repo>/.clusters`. */
  dir?: string;
  /** Cluster names; default ['a', 'b']. */
  names?: string[];
  /** OSD capacity in MiB (memstore: RAM, allocated as written; bluestore: a sparse file); default DEFAULT_OSD_MIB. */
  osdMiB?: number;
  /**
   * 'memstore' (default: fast, in RAM, but a restarted OSD comes back empty) or 'bluestore' on a
   * sparse file in the cluster directory (survives an OSD kill and restart: for fault tests).
   */
  objectstore?: 'memstore' | 'bluestore';
  /**
   * Let the mon commit changes after 50 ms instead of Ceph's 1 s propose interval: snapshot
   * create/remove and pool changes then take ~0.1 s instead of ~0.9 s. For test suites; off by
   * default, so benchmarks see Ceph's own timing.
   */
  fastMon?: boolean;
  /**
   * OSD op threads; default 1. More is only safe for workloads that trim no snapshots (see the
   * memstore race noted in cephConf); the I/O benchmark uses 4.
   */
  osdOpThreads?: number;
  /** Also start one rbd-mirror daemon per cluster. */
  mirror?: boolean;
  /** Mon ports basePort, basePort+1, ...; default: free ports picked automatically. */
  basePort?: number;
  log?: (s: string) => void;
}

export interface DaemonStatus {
  pid: number | undefined;
  alive: boolean;
}

export interface ClusterStatus {
  name: string;
  conf: string;
  fsid: string;
  monAddr: string;
  reachable: boolean;
  health?: string;
  healthChecks?: string[];
  osdsUp?: number;
  osdsIn?: number;
  numOsds?: number;
  pgs?: number;
  pgsActive?: number;
  mgrAvailable?: boolean;
  /** Raw bytes stored (memstore: RAM held by object data). */
  usedBytes?: number;
  objects?: number;
  daemons: Record<string, DaemonStatus>;
  error?: string;
}

export interface SetStatus {
  dir: string;
  exists: boolean;
  clusters: Record<string, ClusterStatus>;
}

interface StateFile extends ClusterSet {
  version: 1;
  createdAt: string;
  createdBy: number;
}

// ---------------------------------------------------------------------------------------------
// Constants / helpers

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const DEFAULT_DIR = join(REPO, '.clusters');
export const DEFAULT_NAMES = ['a', 'b'];
// Memstore holds data in RAM only as it is written: a roomy capacity costs nothing until used, and a
// full OSD blocks writes (a clean-clone run once filled cluster b near the end of the suite at 3 GiB).
export const DEFAULT_OSD_MIB = 8192;

const DAEMON_BINARIES = new Set(['ceph-mon', 'ceph-mgr', 'ceph-osd', 'rbd-mirror']);
/** Every ceph/rbd CLI call is bounded by this process timeout (ms) unless told otherwise. */
const CMD_TIMEOUT = 60_000;
const CONNECT_TIMEOUT_S = 20;

const noop = () => {};

function sleep(ms: number) {
  return new Promise<void>((r) => setTimeout(r, ms));
}

/** Environment for every child: isolated from the caller's CEPH_ARGS / CEPH_CONF. */
function childEnv(conf?: string): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  delete env.CEPH_ARGS;
  delete env.CEPH_CONF;
  if (conf) env.CEPH_CONF = conf;
  return env;
}

interface RunResult { stdout: string; stderr: string }

/** Runs a command with a hard timeout (SIGKILL). Rejects with stderr in the message. */
export function run(
  cmd: string, args: string[], opts: { timeoutMs?: number; env?: NodeJS.ProcessEnv } = {},
): Promise<RunResult> {
  const timeout = opts.timeoutMs ?? CMD_TIMEOUT;
  return new Promise((res, rej) => {
    execFile(cmd, args, {
      timeout, killSignal: 'SIGKILL', maxBuffer: 64 << 20, env: opts.env ?? childEnv(), encoding: 'utf8',
    }, (err, stdout, stderr) => {
      if (err) {
        const e = err as NodeJS.ErrnoException & { killed?: boolean; code?: unknown; signal?: string };
        const why = e.killed ? `timed out after ${timeout} ms` : `exit ${e.code ?? e.signal}`;
        rej(new Error(`${cmd} ${args.join(' ')}: ${why}\n${String(stderr).trim()}`));
      } else {
        res({ stdout, stderr });
      }
    });
  });
}

/** `ceph` CLI against one cluster (admin), bounded by --connect-timeout and a process timeout. */
export function cephCmd(conf: string, args: string[], timeoutMs = CMD_TIMEOUT): Promise<RunResult> {
  const ct = Math.max(1, Math.min(CONNECT_TIMEOUT_S, Math.floor(timeoutMs / 1000) - 1));
  return run('ceph', ['-c', conf, '--connect-timeout', String(ct), ...args], { timeoutMs, env: childEnv(conf) });
}

/** `rbd` CLI against one cluster (admin), bounded by mount/op timeouts and a process timeout. */
export function rbdCmd(conf: string, args: string[], timeoutMs = CMD_TIMEOUT): Promise<RunResult> {
  const t = String(Math.max(1, Math.floor(timeoutMs / 1000)));
  return run('rbd', ['-c', conf, `--client_mount_timeout=${t}`, `--rados_mon_op_timeout=${t}`, ...args], {
    timeoutMs, env: childEnv(conf),
  });
}

/** A new cephx secret (same encoding as `ceph-authtool --gen-print-key`). */
function genKey(): string {
  const b = Buffer.alloc(2 + 4 + 4 + 2 + 16);
  const now = Date.now();
  b.writeUInt16LE(1, 0); // CEPH_CRYPTO_AES
  b.writeUInt32LE(Math.floor(now / 1000), 2);
  b.writeUInt32LE((now % 1000) * 1e6, 6);
  b.writeUInt16LE(16, 10);
  randomBytes(16).copy(b, 12);
  return b.toString('base64');
}

function keyringEntry(entity: string, key: string, caps: Record<string, string> = {}): string {
  let s = `[${entity}]\n\tkey = ${key}\n`;
  for (const [k, v] of Object.entries(caps)) s += `\tcaps ${k} = "${v}"\n`;
  return s;
}

function writeSecret(path: string, content: string) {
  writeFileSync(path, content, { mode: 0o600 });
}

function writeJsonAtomic(path: string, data: unknown) {
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, JSON.stringify(data, null, 2) + '\n');
  renameSync(tmp, path);
}

/** Free TCP ports on 127.0.0.1 (held simultaneously while picking, so they are distinct). */
export async function freePorts(n: number): Promise<number[]> {
  const servers = await Promise.all(Array.from({ length: n }, () => new Promise<ReturnType<typeof createServer>>(
    (res, rej) => {
      const s = createServer();
      s.once('error', rej);
      s.listen(0, '127.0.0.1', () => res(s));
    },
  )));
  const ports = servers.map((s) => (s.address() as { port: number }).port);
  await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  return ports;
}

// ---------------------------------------------------------------------------------------------
// Process bookkeeping

function procState(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0];
  } catch {
    return undefined;
  }
}

/** True if pid is a live (non-zombie) Ceph daemon started with this cluster's conf. */
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
  if (argv.length === 0 || !DAEMON_BINARIES.has(basename(argv[0]))) return false;
  return argv.includes(conf);
}

function daemonPids(info: ClusterInfo): [string, number | undefined][] {
  return [['mirror', info.pids.mirror], ['osd', info.pids.osd], ['mgr', info.pids.mgr], ['mon', info.pids.mon]];
}

interface Spawned { pid: number; exited: () => { code: number | null; signal: string | null } | undefined }

/** Starts a daemon detached, in foreground mode, stdout/stderr appended to log/<label>.out. */
function spawnDaemon(cdir: string, conf: string, label: string, bin: string, args: string[]): Spawned {
  const out = openSync(join(cdir, 'log', `${label}.out`), 'a');
  let exit: { code: number | null; signal: string | null } | undefined;
  try {
    const child = spawn(bin, [...args, '-c', conf], {
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

export function tail(path: string, lines = 15): string {
  try {
    return readFileSync(path, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '';
  }
}

// ---------------------------------------------------------------------------------------------
// State file

function statePath(dir: string) {
  return join(dir, 'state.json');
}

function readState(dir: string): StateFile | undefined {
  try {
    return JSON.parse(readFileSync(statePath(dir), 'utf8')) as StateFile;
  } catch {
    return undefined;
  }
}

function toSet(s: StateFile): ClusterSet {
  return { dir: s.dir, clusters: s.clusters };
}

// ---------------------------------------------------------------------------------------------
// Configuration

function cephConf(c: {
  cdir: string; name: string; fsid: string; port: number; osdBytes: number; fastMon: boolean; osdOpThreads: number;
  objectstore: 'memstore' | 'bluestore';
}): string {
  const d = c.cdir;
  return `# Generated by rbd-stream scripts/cluster.ts — cluster "${c.name}"
[global]
fsid = ${c.fsid}
mon host = [v2:127.0.0.1:${c.port}]
public addr = 127.0.0.1
ms bind msgr1 = false
ms bind ipv6 = false
auth cluster required = cephx
auth service required = cephx
auth client required = cephx
auth allow insecure global id reclaim = false
keyring = ${d}/keyring
run dir = ${d}/run
crash dir = ${d}/crash
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
osd crush chooseleaf type = 0
mon allow pool size one = true
mon allow pool delete = true
mon max pg per osd = 500
mon warn on pool no redundancy = false
mon warn on insecure global id reclaim = false
mon warn on insecure global id reclaim allowed = false
mon data avail warn = 1
mon data avail crit = 0
osd class load list = *
osd class default list = *

[client]
admin socket = ${d}/run/$cluster-$name.$pid.$cctid.asok

[mon]
mon data = ${d}/mon.$id
keyring = ${d}/mon.$id/keyring
pid file = ${d}/run/$name.pid
admin socket = ${d}/run/$name.asok
log file = ${d}/log/$name.log
mon cluster log file = ${d}/log/cluster.log
mon initial members = a
mgr initial modules = iostat
${c.fastMon ? 'paxos propose interval = 0.05\n' : ''}
[mgr]
mgr data = ${d}/mgr.$id
keyring = ${d}/mgr.$id/keyring
pid file = ${d}/run/$name.pid
admin socket = ${d}/run/$name.asok
log file = ${d}/log/$name.log

[osd]
osd data = ${d}/osd.$id
keyring = ${d}/osd.$id/keyring
pid file = ${d}/run/$name.pid
admin socket = ${d}/run/$name.asok
log file = ${d}/log/$name.log
${c.objectstore === 'bluestore' ? `osd objectstore = bluestore
bluestore block path = ${d}/osd.$id.block
bluestore block create = true
bluestore block size = ${c.osdBytes}
bluestore fsck on mount = false
# Small caches: this is a test cluster sharing the machine.
bluestore cache autotune = false
bluestore cache size = 134217728
osd memory target = 939524096
` : `osd objectstore = memstore
memstore device bytes = ${c.osdBytes}
memstore page set = false
`}# memstore reports class hdd, whose 5 s trim sleep lets removed snapshots
# pile up in RAM until the OSD is full.
osd snap trim sleep = 0
osd snap trim sleep hdd = 0
# One op thread by default: memstore's omap iterator is not safe against writes to the same
# object from another thread, and every PG shares the OSD's snapmapper object, so a snap trim
# racing another PG's write segfaults the OSD (Ceph 16.2.15; within 4–10 s of snapshot churn
# with 2×2 threads, see scripts/snapstress.ts).
osd op num shards = ${c.osdOpThreads}
osd op num threads per shard = 1
osd scrub during recovery = false
osd scrub begin hour = 0
osd scrub end hour = 0

[client.rbd-mirror.${c.name}]
keyring = ${d}/rbd-mirror.keyring
pid file = ${d}/run/$name.pid
admin socket = ${d}/run/$name.asok
log file = ${d}/log/$name.log
`;
}

// ---------------------------------------------------------------------------------------------
// Cluster creation

interface CreateCtx {
  setDir: string;
  name: string;
  port: number;
  osdBytes: number;
  fastMon: boolean;
  osdOpThreads: number;
  objectstore: 'memstore' | 'bluestore';
  mirror: boolean;
  log: (s: string) => void;
  /** Called whenever a daemon pid is known, so partial sets can be cleaned up. */
  record: (info: ClusterInfo) => void;
}

async function createCluster(ctx: CreateCtx): Promise<ClusterInfo> {
  const { name, port, log } = ctx;
  const cdir = join(ctx.setDir, name);
  rmSync(cdir, { recursive: true, force: true });
  for (const sub of ['run', 'log', 'crash', 'mon.a', 'mgr.x', 'osd.0']) mkdirSync(join(cdir, sub), { recursive: true });

  const fsid = randomUUID();
  const conf = join(cdir, 'ceph.conf');
  const keyring = join(cdir, 'keyring');
  const mirrorKeyring = join(cdir, 'rbd-mirror.keyring');
  writeFileSync(conf, cephConf({
    cdir, name, fsid, port, osdBytes: ctx.osdBytes, fastMon: ctx.fastMon, osdOpThreads: ctx.osdOpThreads, objectstore: ctx.objectstore,
  }));

  // Keys: the mon keyring seeds the auth database at mkfs with admin, mgr and rbd-mirror users,
  // which saves a `ceph auth get-or-create` round trip per entity.
  const admin = genKey();
  const monKey = genKey();
  const mgrKey = genKey();
  const osdKey = genKey();
  const mirrorKey = genKey();
  const adminCaps = { mds: 'allow *', mgr: 'allow *', mon: 'allow *', osd: 'allow *' };
  const mgrCaps = { mds: 'allow *', mon: 'allow profile mgr', osd: 'allow *' };
  const mirrorCaps = { mon: 'profile rbd-mirror', osd: 'profile rbd' };
  writeSecret(keyring, keyringEntry('client.admin', admin, adminCaps));
  writeSecret(join(cdir, 'mgr.x', 'keyring'), keyringEntry('mgr.x', mgrKey));
  writeSecret(join(cdir, 'osd.0', 'keyring'), keyringEntry('osd.0', osdKey));
  writeSecret(mirrorKeyring, keyringEntry(`client.rbd-mirror.${name}`, mirrorKey));
  const monKeyring = join(cdir, 'mon.keyring');
  writeSecret(monKeyring,
    keyringEntry('mon.', monKey, { mon: 'allow *' }) +
    keyringEntry('client.admin', admin, adminCaps) +
    keyringEntry('mgr.x', mgrKey, mgrCaps) +
    keyringEntry(`client.rbd-mirror.${name}`, mirrorKey, mirrorCaps));
  const osdUuid = randomUUID();
  const osdSecret = join(cdir, 'osd.0', 'new.json');
  writeSecret(osdSecret, JSON.stringify({ cephx_secret: osdKey }));

  const monmap = join(cdir, 'monmap');
  const env = childEnv(conf);
  await run('monmaptool', ['--create', '--clobber', '--fsid', fsid, '--addv', 'a', `[v2:127.0.0.1:${port}]`, monmap], { env });
  await Promise.all([
    run('ceph-mon', ['--mkfs', '-i', 'a', '-c', conf, '--monmap', monmap, '--keyring', monKeyring], { env }),
    run('ceph-osd', ['--mkfs', '-i', '0', '-c', conf, '--osd-uuid', osdUuid, '--no-mon-config'], { env }),
  ]);
  rmSync(monKeyring, { force: true });

  const info: ClusterInfo = {
    name, dir: cdir, conf, keyring, user: 'admin', fsid, monAddr: `v2:127.0.0.1:${port}`, port,
    pids: { mon: 0, mgr: 0, osd: 0 }, mirrorUser: `rbd-mirror.${name}`, mirrorKeyring,
  };
  const t0 = Date.now();
  const mon = spawnDaemon(cdir, conf, 'mon.a', 'ceph-mon', ['-f', '-i', 'a']);
  info.pids.mon = mon.pid;
  ctx.record(info);
  const mgr = spawnDaemon(cdir, conf, 'mgr.x', 'ceph-mgr', ['-f', '-i', 'x']);
  info.pids.mgr = mgr.pid;
  ctx.record(info);

  const checkAlive = (what: string, d: Spawned, logName: string) => {
    const ex = d.exited();
    if (ex) {
      throw new Error(`${name}: ${what} exited (${ex.code ?? ex.signal}) during start-up:\n` +
        `${tail(join(cdir, 'log', `${logName}.out`))}\n${tail(join(cdir, 'log', `${logName}.log`))}`);
    }
  };

  try {
    await cephCmd(conf, ['osd', 'new', osdUuid, '0', '-i', osdSecret]);
  } catch (e) {
    checkAlive('ceph-mon', mon, 'mon.a');
    throw e;
  }
  rmSync(osdSecret, { force: true });
  log(`[${name}] mon up (${Date.now() - t0} ms)`);
  const osd = spawnDaemon(cdir, conf, 'osd.0', 'ceph-osd', ['-f', '-i', '0']);
  info.pids.osd = osd.pid;
  ctx.record(info);

  await cephCmd(conf, ['osd', 'pool', 'create', 'rbd', '8', '8']);
  try {
    await rbdCmd(conf, ['pool', 'init', 'rbd'], 60_000);
  } catch (e) {
    checkAlive('ceph-osd', osd, 'osd.0');
    throw e;
  }
  log(`[${name}] osd up, pool rbd initialised (${Date.now() - t0} ms)`);

  if (ctx.mirror) {
    info.pids.mirror = spawnMirror(info).pid;
    ctx.record(info);
  }

  await waitHealthy(info, 90_000, () => {
    checkAlive('ceph-mon', mon, 'mon.a');
    checkAlive('ceph-mgr', mgr, 'mgr.x');
    checkAlive('ceph-osd', osd, 'osd.0');
  });
  log(`[${name}] healthy (${Date.now() - t0} ms after mon start)`);

  // Prefer the pids the daemons wrote themselves (identical in foreground mode).
  for (const [k, file] of [['mon', 'mon.a'], ['mgr', 'mgr.x'], ['osd', 'osd.0']] as const) {
    const p = readPidFile(join(cdir, 'run', `${file}.pid`));
    if (p && isOurDaemon(p, conf)) info.pids[k] = p;
  }
  ctx.record(info);
  return info;
}

function readPidFile(path: string): number | undefined {
  try {
    const n = Number.parseInt(readFileSync(path, 'utf8').trim(), 10);
    return Number.isFinite(n) && n > 1 ? n : undefined;
  } catch {
    return undefined;
  }
}

function spawnMirror(info: ClusterInfo): Spawned {
  return spawnDaemon(info.dir, info.conf, `client.${info.mirrorUser}`, 'rbd-mirror',
    ['-f', '--id', info.mirrorUser]);
}

interface CephStatusJson {
  fsid?: string;
  health?: { status?: string; checks?: Record<string, unknown> };
  osdmap?: { num_osds?: number; num_up_osds?: number; num_in_osds?: number; osdmap?: CephStatusJson['osdmap'] };
  pgmap?: { num_pgs?: number; pgs_by_state?: { state_name: string; count: number }[]; bytes_used?: number; num_objects?: number };
  mgrmap?: { available?: boolean };
}

async function cephStatus(conf: string, timeoutMs = 15_000): Promise<CephStatusJson> {
  const { stdout } = await cephCmd(conf, ['status', '--format', 'json'], timeoutMs);
  return JSON.parse(stdout) as CephStatusJson;
}

function summarize(s: CephStatusJson) {
  const om = s.osdmap?.osdmap ?? s.osdmap ?? {};
  const pgs = s.pgmap?.num_pgs ?? 0;
  const pgsActive = (s.pgmap?.pgs_by_state ?? [])
    .filter((x) => x.state_name.split('+').includes('active'))
    .reduce((a, x) => a + x.count, 0);
  return {
    health: s.health?.status,
    healthChecks: Object.keys(s.health?.checks ?? {}),
    numOsds: om.num_osds ?? 0,
    osdsUp: om.num_up_osds ?? 0,
    osdsIn: om.num_in_osds ?? 0,
    pgs,
    pgsActive,
    mgrAvailable: s.mgrmap?.available ?? false,
    usedBytes: s.pgmap?.bytes_used ?? 0,
    objects: s.pgmap?.num_objects ?? 0,
  };
}

/** Polls `ceph status` until the OSD is up+in, the mgr is available and all PGs are active. */
export async function waitHealthy(info: Pick<ClusterInfo, 'name' | 'conf'>, timeoutMs = 90_000,
  check: () => void = noop): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  for (;;) {
    check();
    try {
      const s = summarize(await cephStatus(info.conf, 15_000));
      last = JSON.stringify(s);
      if (s.osdsUp >= 1 && s.osdsIn >= 1 && s.mgrAvailable && s.pgs > 0 && s.pgsActive === s.pgs) return;
    } catch (e) {
      last = (e as Error).message;
    }
    if (Date.now() > deadline) throw new Error(`${info.name}: cluster not healthy after ${timeoutMs} ms: ${last}`);
    await sleep(400);
  }
}

// ---------------------------------------------------------------------------------------------
// Public API

/**
 * Starts a set of independent clusters (in parallel) in `dir`, or returns the running set
 * if `dir` already holds a live one. A stale set (dead daemons) is cleaned and recreated.
 */
export async function up(opts: UpOptions = {}): Promise<ClusterSet> {
  const dir = resolve(opts.dir ?? DEFAULT_DIR);
  const names = opts.names ?? DEFAULT_NAMES;
  const log = opts.log ?? noop;
  for (const n of names) {
    if (!/^[a-z0-9][a-z0-9_-]*$/i.test(n)) throw new Error(`invalid cluster name ${JSON.stringify(n)}`);
  }
  if (new Set(names).size !== names.length) throw new Error('duplicate cluster names');
  const osdBytes = Math.round((opts.osdMiB ?? DEFAULT_OSD_MIB) * 1024 * 1024);
  const threads = opts.osdOpThreads ?? 1;
  if (!Number.isInteger(threads) || threads < 1 || threads > 32) throw new RangeError(`osdOpThreads must be an integer 1..32, got ${threads}`);
  const objectstore = opts.objectstore ?? 'memstore';
  if (objectstore !== 'memstore' && objectstore !== 'bluestore') throw new RangeError(`objectstore must be 'memstore' or 'bluestore', got ${String(objectstore)}`);

  const existing = readState(dir);
  if (existing) {
    const sameNames = Object.keys(existing.clusters).sort().join(',') === [...names].sort().join(',');
    if (sameNames && await isLive(existing)) {
      log(`cluster set in ${dir} is already running`);
      if (opts.mirror) {
        for (const n of names) if (!isOurDaemon(existing.clusters[n].pids.mirror, existing.clusters[n].conf)) {
          await startMirrorDaemon(dir, n);
        }
        return toSet(readState(dir)!);
      }
      return toSet(existing);
    }
    log(`cleaning ${sameNames ? 'stale' : 'different'} cluster set in ${dir}`);
    await down(dir);
  }

  mkdirSync(dir, { recursive: true });
  const state: StateFile = {
    version: 1, createdAt: new Date().toISOString(), createdBy: process.pid, dir, clusters: {},
  };
  const save = () => writeJsonAtomic(statePath(dir), state);
  save();

  const t0 = Date.now();
  const ports = opts.basePort ? names.map((_, i) => opts.basePort! + i) : await freePorts(names.length);
  try {
    await Promise.all(names.map((name, i) => createCluster({
      setDir: dir, name, port: ports[i], osdBytes, fastMon: !!opts.fastMon, osdOpThreads: threads, objectstore, mirror: !!opts.mirror, log,
      record: (info) => { state.clusters[name] = { ...info, pids: { ...info.pids } }; save(); },
    })));
  } catch (e) {
    log(`start-up failed, stopping what was started: ${(e as Error).message.split('\n')[0]}`);
    await down(dir).catch(noop);
    throw e;
  }
  log(`${names.length} cluster(s) up in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  return toSet(state);
}

async function isLive(s: StateFile): Promise<boolean> {
  const infos = Object.values(s.clusters);
  if (infos.length === 0) return false;
  for (const c of infos) {
    if (!(['mon', 'mgr', 'osd'] as const).every((k) => isOurDaemon(c.pids[k], c.conf))) return false;
  }
  try {
    await Promise.all(infos.map((c) => cephCmd(c.conf, ['health'], 15_000)));
    return true;
  } catch {
    return false;
  }
}

/** Sends `sig` to each pid that is verified to be one of our daemons; returns those signalled. */
function signalVerified(pids: { pid: number; conf: string }[], sig: NodeJS.Signals): number[] {
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

async function stopPids(pids: { pid: number; conf: string }[], graceMs = 10_000): Promise<void> {
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

/** Health and daemon liveness of each cluster of the set in `dir`. Never prints or returns keys. */
export async function status(dir: string = DEFAULT_DIR): Promise<SetStatus> {
  dir = resolve(dir);
  const s = readState(dir);
  if (!s) return { dir, exists: false, clusters: {} };
  const entries = await Promise.all(Object.values(s.clusters).map(async (c): Promise<ClusterStatus> => {
    const daemons: Record<string, DaemonStatus> = {};
    for (const [k, p] of daemonPids(c)) {
      if (k === 'mirror' && !p) continue;
      daemons[k] = { pid: p, alive: isOurDaemon(p, c.conf) };
    }
    const base = { name: c.name, conf: c.conf, fsid: c.fsid, monAddr: c.monAddr, daemons };
    if (!daemons.mon.alive) return { ...base, reachable: false, error: 'mon not running' };
    try {
      return { ...base, reachable: true, ...summarize(await cephStatus(c.conf, 15_000)) };
    } catch (e) {
      return { ...base, reachable: false, error: (e as Error).message.split('\n').slice(0, 3).join(' ') };
    }
  }));
  return { dir, exists: true, clusters: Object.fromEntries(entries.map((e) => [e.name, e])) };
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

/**
 * Sends `signal` to one daemon of cluster `name` (verified to be ours); for fault tests, e.g.
 * SIGSTOP/SIGCONT of the OSD to simulate a hung one. Returns false if it is not running.
 */
export function signalDaemon(dir: string, name: string, daemon: keyof ClusterPids, signal: NodeJS.Signals): boolean {
  const c = readState(resolve(dir))?.clusters[name];
  if (!c) throw new Error(`no cluster ${name} in ${dir}`);
  return signalVerified([{ pid: c.pids[daemon] ?? 0, conf: c.conf }], signal).length === 1;
}

/**
 * Starts the OSD of cluster `name` again after it died or was killed (fault tests: SIGKILL, then
 * this; with bluestore the OSD comes back with its data). Returns the new pid once the OSD is
 * marked up in the osdmap again.
 */
export async function restartOsd(dir: string, name: string, timeoutMs = 60_000): Promise<number> {
  dir = resolve(dir);
  const c = readState(dir)?.clusters[name];
  if (!c) throw new Error(`no cluster ${name} in ${dir}`);
  const deadline = Date.now() + timeoutMs;
  while (isOurDaemon(c.pids.osd, c.conf)) {
    if (Date.now() > deadline) throw new Error(`osd.0 of ${name} (pid ${c.pids.osd}) is still running`);
    await sleep(50);
  }
  const d = spawnDaemon(c.dir, c.conf, 'osd.0', 'ceph-osd', ['-f', '-i', '0']);
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

/**
 * Starts a tiny detached watchdog (plain node, no deps) that tears the set in `dir` down with
 * SIGKILL if process `parentPid` disappears without having called `down` (e.g. the test runner
 * was SIGKILLed). May be started before `up` (the dir must exist). It exits by itself once the
 * dir, or a `<dir>/state.json` it has seen, is gone. Returns its pid.
 */
export function spawnWatchdog(dir: string, parentPid: number = process.pid): number {
  dir = resolve(dir);
  const script = `
const fs = require('fs'), path = require('path');
const [parent, dir] = [Number(process.argv[1]), process.argv[2]];
const bins = new Set(${JSON.stringify([...DAEMON_BINARIES])});
const statePath = path.join(dir, 'state.json');
function alive(pid) { try { process.kill(pid, 0); return true; } catch (e) { return e.code === 'EPERM'; } }
function ours(pid, conf) {
  try {
    const st = fs.readFileSync('/proc/' + pid + '/stat', 'utf8');
    if (/^[ZX]/.test(st.slice(st.lastIndexOf(')') + 2))) return false;
    const argv = fs.readFileSync('/proc/' + pid + '/cmdline', 'utf8').split('\\0').filter(Boolean);
    return argv.length > 0 && bins.has(path.basename(argv[0])) && argv.includes(conf);
  } catch { return false; }
}
let seen = false;
setInterval(() => {
  if (!fs.existsSync(dir)) process.exit(0);
  if (!fs.existsSync(statePath)) { if (seen) process.exit(0); if (alive(parent)) return; }
  seen = true;
  if (alive(parent)) return;
  let s; try { s = JSON.parse(fs.readFileSync(statePath, 'utf8')); } catch { process.exit(0); }
  for (const c of Object.values(s.clusters || {})) {
    for (const pid of Object.values(c.pids || {})) if (pid && ours(pid, c.conf)) { try { process.kill(pid, 'SIGKILL'); } catch {} }
    if (path.resolve(c.dir).startsWith(path.resolve(dir) + '/')) fs.rmSync(c.dir, { recursive: true, force: true });
  }
  fs.rmSync(statePath, { force: true });
  try { fs.rmdirSync(dir); } catch {}
  process.exit(0);
}, 1000);
`;
  const child = spawn(process.execPath, ['-e', script, String(parentPid), dir], {
    detached: true, stdio: 'ignore', env: childEnv(),
  });
  child.unref();
  return child.pid!;
}

/** Shell lines exporting RBD_STREAM_CONF_<NAME>/KEYRING/USER/POOL for a set. */
export function envExports(set: ClusterSet): string[] {
  const lines: string[] = [];
  for (const c of Object.values(set.clusters)) {
    const N = c.name.toUpperCase().replace(/[^A-Z0-9]/g, '_');
    lines.push(`export RBD_STREAM_CONF_${N}=${c.conf}`);
    lines.push(`export RBD_STREAM_KEYRING_${N}=${c.keyring}`);
    lines.push(`export RBD_STREAM_USER_${N}=${c.user}`);
    lines.push(`export RBD_STREAM_POOL_${N}=rbd`);
  }
  return lines;
}

// ---------------------------------------------------------------------------------------------
// CLI

function parseArgs(argv: string[]) {
  const o: { cmd?: string; dir?: string; names?: string[]; osdMiB?: number; mirror: boolean; fastMon?: boolean; osdOpThreads?: number; objectstore?: UpOptions['objectstore']; json: boolean; basePort?: number } =
    { mirror: false, json: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const val = () => {
      const eq = a.indexOf('=');
      if (eq >= 0) return a.slice(eq + 1);
      const v = argv[++i];
      if (v === undefined) throw new Error(`${a} needs a value`);
      return v;
    };
    const key = a.split('=')[0];
    switch (key) {
      case '--dir': o.dir = val(); break;
      case '--names': o.names = val().split(',').map((s) => s.trim()).filter(Boolean); break;
      case '--osd-mb': o.osdMiB = Number(val()); break;
      case '--base-port': o.basePort = Number(val()); break;
      case '--mirror': o.mirror = true; break;
      case '--fast-mon': o.fastMon = true; break;
      case '--osd-op-threads': o.osdOpThreads = Number(val()); break;
      case '--objectstore': o.objectstore = val() as UpOptions['objectstore']; break;
      case '--json': o.json = true; break;
      case '-h': case '--help': o.cmd = 'help'; break;
      default:
        if (a.startsWith('-') || o.cmd) throw new Error(`unknown argument ${a}`);
        o.cmd = a;
    }
  }
  return o;
}

const USAGE = `usage: npm run cluster -- up|down|status [--dir D] [--names a,b] [--osd-mb N] [--mirror] [--fast-mon] [--osd-op-threads N] [--objectstore memstore|bluestore] [--base-port P] [--json]
  up      start (or reuse) a set of independent local Ceph clusters (mon+mgr+memstore osd [+rbd-mirror])
  down    stop exactly the recorded daemons and remove the set's data
  status  health and daemon pids of each cluster
  --fast-mon  mon commits after 50 ms, not 1 s (snapshot ops ~0.1 s instead of ~0.9 s; tests use it)
  --osd-op-threads N  OSD op threads (default 1: more lets memstore crash when snapshots are trimmed)
  --objectstore S  memstore (default, RAM) or bluestore (a sparse file per OSD; survives an OSD restart)
default dir: ${DEFAULT_DIR}`;

async function main() {
  const o = parseArgs(process.argv.slice(2));
  const dir = resolve(o.dir ?? DEFAULT_DIR);
  const err = (s: string) => process.stderr.write(s + '\n');
  switch (o.cmd) {
    case 'up': {
      const t0 = Date.now();
      const set = await up({ dir, names: o.names, osdMiB: o.osdMiB, mirror: o.mirror, fastMon: o.fastMon, osdOpThreads: o.osdOpThreads, objectstore: o.objectstore, basePort: o.basePort,
        log: o.json ? noop : err });
      const secs = (Date.now() - t0) / 1000;
      if (o.json) {
        process.stdout.write(JSON.stringify({ ...set, elapsedSeconds: secs }, null, 2) + '\n');
        break;
      }
      const out: string[] = [`Clusters ready in ${dir} (${secs.toFixed(1)} s):`, ''];
      for (const c of Object.values(set.clusters)) {
        out.push(`  ${c.name}: fsid ${c.fsid}  mon ${c.monAddr}  pids mon ${c.pids.mon} mgr ${c.pids.mgr} osd ${c.pids.osd}` +
          (c.pids.mirror ? ` rbd-mirror ${c.pids.mirror}` : ''));
      }
      out.push('', 'Use them from a shell:', '');
      out.push(...envExports(set).map((l) => '  ' + l));
      out.push('');
      for (const c of Object.values(set.clusters)) {
        out.push(`  rbd -c ${c.conf} ls`);
        out.push(`  ceph -c ${c.conf} -s`);
      }
      out.push('', `Stop: npm run cluster -- down${o.dir ? ` --dir ${dir}` : ''}`);
      process.stdout.write(out.join('\n') + '\n');
      break;
    }
    case 'down': {
      await down(dir);
      if (!o.json) process.stdout.write(`stopped and removed cluster set in ${dir}\n`);
      else process.stdout.write(JSON.stringify({ dir, down: true }) + '\n');
      break;
    }
    case 'status': {
      const st = await status(dir);
      if (o.json) {
        process.stdout.write(JSON.stringify(st, null, 2) + '\n');
      } else if (!st.exists) {
        process.stdout.write(`no cluster set in ${dir}\n`);
      } else {
        const out: string[] = [`cluster set ${dir}`];
        for (const c of Object.values(st.clusters)) {
          const pids = Object.entries(c.daemons)
            .map(([k, d]) => `${k} ${d.pid ?? '-'}${d.alive ? '' : ' (dead)'}`).join(', ');
          if (c.reachable) {
            out.push(`  ${c.name}: ${c.health}${c.healthChecks?.length ? ` [${c.healthChecks.join(', ')}]` : ''}; ` +
              `osd ${c.osdsUp}/${c.numOsds} up, ${c.osdsIn} in; pgs ${c.pgsActive}/${c.pgs} active; ` +
              `mgr ${c.mgrAvailable ? 'available' : 'unavailable'}`);
          } else {
            out.push(`  ${c.name}: UNREACHABLE (${c.error})`);
          }
          out.push(`     conf ${c.conf}`, `     pids: ${pids}`);
        }
        process.stdout.write(out.join('\n') + '\n');
      }
      const bad = !st.exists || Object.values(st.clusters).some((c) => !c.reachable);
      process.exitCode = bad ? 1 : 0;
      break;
    }
    default:
      process.stdout.write(USAGE + '\n');
      if (o.cmd !== 'help') process.exitCode = 2;
  }
}

const isMain = !!process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url);
if (isMain) {
  main().catch((e) => {
    process.stderr.write(`cluster: ${(e as Error).message}\n`);
    process.exit(1);
  });
}
