/**
 * Cluster helper for tests, benchmarks and the demo.
 *
 * - resolveClusters(): use existing clusters named by RBD_STREAM_CONF_A/B (+ KEYRING/USER/POOL),
 *   or start two fresh local clusters (tools/cluster `up`) in a new temp dir.
 * - getClusters(): in test files, the clusters provided by test/global-setup.ts
 *   (outside vitest: rebuilt from the RBD_STREAM_* environment).
 * - rbdCli / cephCli / rbdExportMd5: run the real CLIs against a cluster, with timeouts.
 */
import { execFileSync, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inject } from 'vitest';
import { up } from '../../tools/cluster/index.js';

export interface TestCluster {
  /** 'a' or 'b'. */
  name: string;
  conf: string;
  /** Keyring path; undefined means the one named in conf. */
  keyring?: string;
  /** Ceph user id without `client.` (e.g. 'admin'); undefined means the CLI default. */
  user?: string;
  pool: string;
  /** Known when we started the cluster. */
  fsid?: string;
  /** rbd-mirror user/keyring of a cluster we started (for startMirrorDaemon). */
  mirrorUser?: string;
  mirrorKeyring?: string;
}

export interface ResolvedClusters {
  /** True when these clusters were started by resolveClusters (and must be stopped by us). */
  started: boolean;
  /** Set directory (tools/cluster) when started. */
  dir?: string;
  a: TestCluster;
  b?: TestCluster;
}

declare module 'vitest' {
  export interface ProvidedContext {
    clusters: ResolvedClusters;
  }
}

function fromEnv(name: 'a' | 'b'): TestCluster | undefined {
  const N = name.toUpperCase();
  const conf = process.env[`RBD_STREAM_CONF_${N}`];
  if (!conf) return undefined;
  return {
    name,
    conf,
    keyring: process.env[`RBD_STREAM_KEYRING_${N}`] || undefined,
    user: process.env[`RBD_STREAM_USER_${N}`] || undefined,
    pool: process.env[`RBD_STREAM_POOL_${N}`] || 'rbd',
  };
}

/** Sets RBD_STREAM_CONF_A/B, _KEYRING_, _USER_, _POOL_ in process.env for the given clusters. */
export function exportClusterEnv(r: ResolvedClusters, env: NodeJS.ProcessEnv = process.env): void {
  for (const c of [r.a, r.b]) {
    if (!c) continue;
    const N = c.name.toUpperCase();
    env[`RBD_STREAM_CONF_${N}`] = c.conf;
    if (c.keyring) env[`RBD_STREAM_KEYRING_${N}`] = c.keyring;
    if (c.user) env[`RBD_STREAM_USER_${N}`] = c.user;
    env[`RBD_STREAM_POOL_${N}`] = c.pool;
  }
}

/**
 * Existing clusters from RBD_STREAM_CONF_A (and optionally _B) if set — nothing is started;
 * otherwise two new clusters in a fresh temp dir (mirror daemons only if `mirror`).
 */
export async function resolveClusters(opts: {
  mirror?: boolean; osdMiB?: number; fastMon?: boolean; osdOpThreads?: number; log?: (s: string) => void;
  /** Called with the new set dir before any daemon starts (to arm cleanup handlers). */
  onDir?: (dir: string) => void;
} = {}): Promise<ResolvedClusters> {
  const a = fromEnv('a');
  if (a) return { started: false, a, b: fromEnv('b') };

  const dir = mkdtempSync(join(tmpdir(), 'rbd-stream-clusters-'));
  opts.onDir?.(dir);
  const set = await up({ dir, names: ['a', 'b'], mirror: opts.mirror ?? false, osdMiB: opts.osdMiB, fastMon: opts.fastMon, osdOpThreads: opts.osdOpThreads, log: opts.log });
  const conv = (n: 'a' | 'b'): TestCluster => {
    const c = set.clusters[n];
    return {
      name: n, conf: c.conf, keyring: c.keyring, user: c.user, pool: 'rbd', fsid: c.fsid,
      mirrorUser: c.mirrorUser, mirrorKeyring: c.mirrorKeyring,
    };
  };
  return { started: true, dir: set.dir, a: conv('a'), b: conv('b') };
}

/** The clusters provided by test/global-setup.ts (or, outside vitest, from the environment). */
export function getClusters(): ResolvedClusters {
  let provided: ResolvedClusters | undefined;
  try {
    provided = inject('clusters');
  } catch { /* not inside a vitest worker (benchmarks, demo): fall back to the environment */ }
  if (provided) return provided;
  const a = fromEnv('a');
  if (!a) throw new Error('no clusters: run under vitest (globalSetup) or set RBD_STREAM_CONF_A');
  return { started: false, a, b: fromEnv('b') };
}

/** Common CLI arguments selecting a cluster (conf, user, keyring). */
export function clusterArgs(c: TestCluster): string[] {
  const args = ['-c', c.conf];
  if (c.user) args.push('--id', c.user);
  if (c.keyring) args.push('--keyring', c.keyring);
  return args;
}

export interface CliOptions {
  /** Process timeout in ms (default 60 s); the process is SIGKILLed when exceeded. */
  timeoutMs?: number;
  /** Data written to stdin (e.g. for `import -`). */
  input?: Buffer | string;
  /** Return stdout as a Buffer instead of a utf8 string. */
  buffer?: boolean;
}

function runCli(cmd: string, args: string[], opts: CliOptions = {}): Promise<Buffer> {
  const timeoutMs = opts.timeoutMs ?? 60_000;
  return new Promise((resolve, reject) => {
    const env = { ...process.env };
    delete env.CEPH_ARGS;
    delete env.LD_PRELOAD; // the CLI oracles run uninstrumented under test:asan
    const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'], env });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let timedOut = false;
    const timer = setTimeout(() => { timedOut = true; child.kill('SIGKILL'); }, timeoutMs);
    child.stdout.on('data', (d: Buffer) => out.push(d));
    child.stderr.on('data', (d: Buffer) => err.push(d));
    child.on('error', (e) => { clearTimeout(timer); reject(e); });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (code === 0) return resolve(Buffer.concat(out));
      const why = timedOut ? `timed out after ${timeoutMs} ms` : `exit ${code ?? signal}`;
      reject(Object.assign(new Error(`${cmd} ${args.join(' ')}: ${why}\n${Buffer.concat(err).toString('utf8').trim()}`), { crashed: !timedOut && signal !== null }));
    });
    child.stdin.on('error', () => { /* EPIPE if the CLI exits early; reported via exit code */ });
    child.stdin.end(opts.input ?? undefined);
  });
}

/** Runs the real `rbd` CLI against `c`; returns stdout (string, or Buffer with `buffer: true`). */
export function rbdCli(c: TestCluster, args: string[], opts: CliOptions & { buffer: true }): Promise<Buffer>;
export function rbdCli(c: TestCluster, args: string[], opts?: CliOptions & { buffer?: false }): Promise<string>;
export async function rbdCli(c: TestCluster, args: string[], opts: CliOptions = {}): Promise<string | Buffer> {
  const t = Math.max(1, Math.floor((opts.timeoutMs ?? 60_000) / 1000));
  const out = await oracleRetry(args, () => runCli('rbd', [...clusterArgs(c), `--client_mount_timeout=${t}`, ...args], opts));
  return opts.buffer ? out : out.toString('utf8');
}

/** Removes an image with the CLI, unprotecting and purging its snapshots first; a missing image is no error. */
export async function rbdPurgeImage(c: TestCluster, name: string): Promise<void> {
  const spec = `${c.pool}/${name}`;
  try {
    const snaps = JSON.parse(await rbdCli(c, ['snap', 'ls', '--format', 'json', spec])) as { name: string; protected: string }[];
    for (const s of snaps) {
      if (s.protected === 'true') await rbdCli(c, ['snap', 'unprotect', `${spec}@${s.name}`]).catch(() => {});
    }
    if (snaps.length) await rbdCli(c, ['--no-progress', 'snap', 'purge', spec]).catch(() => {});
    await rbdCli(c, ['--no-progress', 'rm', spec]);
  } catch (e) {
    if (!/No such file|does not exist|ENOENT|error opening image/i.test(String(e))) throw e;
  }
}

/** Test cleanup that must not fail the file: rbdPurgeImage, every error ignored. */
export const rbdRemoveImage = (c: TestCluster, name: string): Promise<void> => rbdPurgeImage(c, name).catch(() => undefined);

/**
 * `rbd` run synchronously: the JS thread, and with it every rbd-stream operation's next step, waits
 * until the CLI has answered. A test reads state that a running operation holds (a round's lease)
 * from inside that operation's progress callback, so the operation cannot move on and drop it first.
 */
export function rbdCliSync(c: TestCluster, args: string[]): string {
  const env = { ...process.env };
  delete env.CEPH_ARGS;
  delete env.LD_PRELOAD;
  return execFileSync('rbd', [...clusterArgs(c), '--client_mount_timeout=60', ...args], { env, timeout: 60_000, encoding: 'utf8' });
}

const READ_VERBS = new Set(['diff', 'export', 'info', 'ls', 'list', 'du', 'status', 'get', '--version']);
/**
 * Runs a read-only `rbd` command again, once, when the CLI died of a signal: Tentacle's rbd (20.2.4)
 * was seen to abort inside librbd (std::system_error "Invalid argument" on an io_context thread)
 * during `rbd diff` with six suites on the machine. The oracle crashing says nothing about the
 * image; a command that changes something is never repeated.
 */
async function oracleRetry<T>(args: string[], run: () => Promise<T>): Promise<T> {
  const verbs = args.filter((a) => !a.startsWith('-') || a === '--version').slice(0, 2);
  const readOnly = verbs.length > 0 && (READ_VERBS.has(verbs[0]) || (verbs.length > 1 && READ_VERBS.has(verbs[1])));
  try {
    return await run();
  } catch (e) {
    if (!readOnly || !(e as { crashed?: boolean }).crashed) throw e;
    console.warn(`[oracle] rbd ${verbs.join(' ')} died of a signal; running it again once:\n${String((e as Error).message).split('\n').slice(0, 3).join('\n')}`);
    return run();
  }
}

/** Runs the `ceph` CLI against `c` (with --connect-timeout); returns stdout. */
export function cephCli(c: TestCluster, args: string[], opts: CliOptions & { buffer: true }): Promise<Buffer>;
export function cephCli(c: TestCluster, args: string[], opts?: CliOptions & { buffer?: false }): Promise<string>;
export async function cephCli(c: TestCluster, args: string[], opts: CliOptions = {}): Promise<string | Buffer> {
  const timeoutMs = opts.timeoutMs ?? 60_000;
  const ct = Math.max(1, Math.min(30, Math.floor(timeoutMs / 1000) - 1));
  const out = await runCli('ceph', [...clusterArgs(c), '--connect-timeout', String(ct), ...args], opts);
  return opts.buffer ? out : out.toString('utf8');
}

/**
 * md5 (hex) of the full contents of `spec` (`pool/image[@snap]`; a bare name uses the cluster's
 * pool) as produced by `rbd export <spec> -`, hashed while streaming.
 */
export function rbdExportMd5(c: TestCluster, spec: string, opts: { timeoutMs?: number } = {}): Promise<string> {
  return oracleRetry(['export'], () => exportMd5Once(c, spec, opts));
}

function exportMd5Once(c: TestCluster, spec: string, opts: { timeoutMs?: number }): Promise<string> {
  const fullSpec = spec.includes('/') ? spec : `${c.pool}/${spec}`;
  const timeoutMs = opts.timeoutMs ?? 300_000;
  return new Promise((resolve, reject) => {
    const env = { ...process.env };
    delete env.CEPH_ARGS;
    delete env.LD_PRELOAD; // the CLI oracles run uninstrumented under test:asan
    const args = [...clusterArgs(c), '--no-progress', 'export', fullSpec, '-'];
    const child = spawn('rbd', args, { stdio: ['ignore', 'pipe', 'pipe'], env });
    const hash = createHash('md5');
    const err: Buffer[] = [];
    let timedOut = false;
    const timer = setTimeout(() => { timedOut = true; child.kill('SIGKILL'); }, timeoutMs);
    child.stdout.on('data', (d: Buffer) => hash.update(d));
    child.stderr.on('data', (d: Buffer) => { if (err.length < 64) err.push(d); });
    child.on('error', (e) => { clearTimeout(timer); reject(e); });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (code === 0) return resolve(hash.digest('hex'));
      const why = timedOut ? `timed out after ${timeoutMs} ms` : `exit ${code ?? signal}`;
      reject(Object.assign(new Error(`rbd ${args.join(' ')}: ${why}\n${Buffer.concat(err).toString('utf8').trim()}`), { crashed: !timedOut && signal !== null }));
    });
  });
}

/** The Ceph major version of the rbd CLI the suite uses as oracle (the host's, or the chroot's). */
export async function rbdCliMajor(c: TestCluster): Promise<number> {
  const v = await rbdCli(c, ['--version']);
  const major = Number(/ceph version (\d+)\./.exec(v)?.[1]);
  if (!Number.isInteger(major)) throw new Error(`cannot tell the rbd CLI's release from ${JSON.stringify(v)}`);
  return major;
}

/**
 * The Ceph major version (16 Pacific, 18 Reef, 20 Tentacle) of `c`'s daemons of one kind, from
 * `ceph versions`: for behaviour that differs between releases on the daemon side, whatever the
 * client's librbd.
 */
export async function cephMajor(c: TestCluster, daemon: 'mon' | 'osd'): Promise<number> {
  const v = JSON.parse(await cephCli(c, ['versions', '--format', 'json'])) as Record<string, Record<string, number> | undefined>;
  const majors = Object.keys(v[daemon] ?? {}).map((s) => Number(/ceph version (\d+)\./.exec(s)?.[1]));
  if (majors.length !== 1 || !Number.isInteger(majors[0])) throw new Error(`cannot tell ${c.name}'s ${daemon} release from ${JSON.stringify(v[daemon])}`);
  return majors[0];
}
