/**
 * replicate() vs `rbd export-diff … - | rbd import-diff - …` (same clusters) and vs the target's
 * `rbd bench` write ceiling, on two local clusters (a → b), optionally with the target made "remote"
 * by an injected reply delay.
 *
 *   npx tsx benchmarks/replicate.ts [--reps 3] [--scale 1] [--target-delay-ms 0,2,10,25]
 *     [--bwlimit-mib 50,200] [--bwlimit-delays 0] [--rss-gib 2] [--no-rss] [--concurrency 4096] [--inflight-mib 48]
 *     [--chunk-mib 1] [--enumeration auto|fine|whole] [--read-gap-kib 0] [--fast-mon] [--osd-mib 10000]
 *     [--workloads full,inc4k,inc64k,sparse,empty] [--variant '{"concurrency":2048,"readGap":0}'] [--settle-ms 0] [--no-warmup]
 *     [--osd-warmup-passes 4]
 *     [--stream-config rbd_cache=false,rbd_disable_zero_copy_writes=false]
 *
 * Uses the clusters named by RBD_STREAM_CONF_A/B, or starts its own set (OSDs with --osd-mib, default
 * 10000 so the 4 GiB RSS case and the warm-up targets fit) and stops it at the end. --scale shrinks every workload (0.25 → 256 MiB
 * images) for a quick run. Repetitions are interleaved (rbd-stream and CLI alternate which goes first);
 * medians, per-rep ratios (CLI time / rbd-stream time, min–max) go to stdout, everything to
 * benchmarks/results/replicate-<time>.json.
 *
 * Target delay (--target-delay-ms, default 0): for each D > 0, a copy of cluster b's conf gets in its
 * [client] section `ms_inject_delay_type = osd`, `ms_inject_delay_max = 2·D/1000`,
 * `ms_inject_delay_probability = 1` (every OSD reply the client receives is held U(0, 2·D) ms, mean D;
 * mon traffic untouched). That conf serves BOTH the rbd-stream target connection (one per delay) and the
 * CLI's target side (`rbd create`, `rbd import-diff`); the source side is never delayed. Per delay the
 * injection is checked (QD1 4 KiB `rbd bench` writes with the cache off: ~1000/D IOPS expected) and the
 * ceiling is measured (`rbd bench --rbd_cache=false`, io-size = --chunk-mib, io-threads = the engine's depth for such chunks, min(--concurrency, --inflight-mib / --chunk-mib)).
 * For (1) both are measured again in every rep, each into a new image: the write ceiling, and the copy
 * ceiling (the same write while the same `rbd bench` reads (1)'s source; the slower of the two rates, an
 * optimistic bound as the faster one's tail runs alone). On one host both clusters share the CPU a copy
 * needs; the copy ceiling is what that leaves a copy.
 * Before any of it, --osd-warmup-passes (default 4) untimed write passes over a scratch image on each
 * cluster grow the new OSDs' heaps (docs/benchmarks.md: a new memstore OSD writes at about half speed).
 *
 * Workloads (each source prepared once, then every delay in turn): (1) full copy of a fully written image
 * (1 GiB); (2) incremental of ~16k scattered 4 KiB writes; (3) incremental of 256 MiB of random 64 KiB
 * writes; (4) full copy of a 5 % allocated image; (5) empty incremental (a snapshot with no change since
 * the base; 5 % allocated base). The incremental targets are made once (undelayed) and kept in step with
 * the source's snapshot chain across all delays; each rep writes fresh changes and takes a new snapshot.
 * Source data is written with `rbd bench` (non-zero pattern). Also: peak RSS while copying --rss-gib GiB
 * (per delay, in a child process), and event-loop lag p99 (perf_hooks.monitorEventLoopDelay) during every
 * rbd-stream copy. For (1) the data-phase rate (image bytes / ReplicateResult.dataSeconds) is compared to
 * the ceiling. Every sample also records the CPU seconds each copy cost: the copying process(es), and, for
 * clusters started by tools/cluster (pid files in the conf's `run dir`), the source and the target osd.0.
 *
 * --bwlimit-mib LIST: per value, one full copy of (1)'s source with `replicate({ bandwidth })`; achieved
 * rate = (bytesWritten + bytesZeroed) / dataSeconds, checked to be within ±10 % of the limit. Runs at the
 * delays of --bwlimit-delays (default 0). --workloads picks a subset of (1)–(5): full, inc4k, inc64k, sparse, empty.
 *
 * --stream-config k=v,…: librados options for rbd-stream's target connection only (and the RSS child's);
 * the CLI keeps the conf. For experiments (docs/benchmarks.md: zero-copy writes).
 *
 * --fast-mon starts the clusters with a 50 ms mon propose interval (scripts/cluster.ts): both tools end
 * every copy by creating a snapshot on the target, which otherwise costs ~0.9 s of mon commit each.
 */
import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { Rados, replicate, type Pool, type ReplicateOptions, type ReplicateResult } from '../lib/index.js';
import { DEFAULT_CONCURRENCY, DEFAULT_INFLIGHT_BYTES, withReplicateTestHooks } from '../lib/transfer/replicate/options.js';
import { cephCli, clusterArgs, resolveClusters, rbdCli, type TestCluster } from '../test/support/clusters.js';
import { delayedConfText } from '../test/support/delay.js';
import { down } from '../tools/cluster/index.js';

const MiB = 1 << 20;
const { values: args } = parseArgs({
  options: {
    reps: { type: 'string', default: '3' },
    scale: { type: 'string', default: '1' },
    'rss-gib': { type: 'string', default: '2' },
    'read-gap-kib': { type: 'string' },
    variant: { type: 'string' },
    'settle-ms': { type: 'string', default: '0' },
    'no-warmup': { type: 'boolean', default: false },
    'osd-warmup-passes': { type: 'string', default: '4' },
    'no-rss': { type: 'boolean', default: false },
    'osd-mib': { type: 'string', default: '10000' },
    concurrency: { type: 'string', default: String(DEFAULT_CONCURRENCY) },
    'inflight-mib': { type: 'string', default: String(DEFAULT_INFLIGHT_BYTES / (1 << 20)) },
    'chunk-mib': { type: 'string', default: '1' },
    enumeration: { type: 'string', default: 'auto' },
    'fast-mon': { type: 'boolean', default: false },
    'target-delay-ms': { type: 'string', default: '0' },
    'bwlimit-mib': { type: 'string', default: '' },
    'bwlimit-delays': { type: 'string', default: '0' },
    workloads: { type: 'string', default: 'full,inc4k,inc64k,sparse,empty' },
    'stream-config': { type: 'string', default: '' },
  },
});
const parseList = (s: string, what: string) => {
  const xs = s.split(',').map((x) => x.trim()).filter((x) => x !== '').map(Number);
  if (xs.some((x) => !Number.isFinite(x) || x < 0)) throw new RangeError(`${what}: expected a comma-separated list of numbers ≥ 0, got '${s}'`);
  return [...new Set(xs)];
};
const REPS = Number(args.reps);
const SCALE = Number(args.scale);
const CONC = Number(args.concurrency);
const CHUNK = Number(args['chunk-mib']) * MiB;
const INFLIGHT = Number(args['inflight-mib']) * MiB;
// The engine's depth for chunk-sized writes: bounded by ops and by buffer bytes; the ceiling uses it.
const DEPTH = Math.max(1, Math.min(CONC, Math.floor(INFLIGHT / CHUNK)));
const ENUM = args.enumeration as 'auto' | 'fine' | 'whole';
// A pause after each incremental rep's source snapshot, before its copies.
const SETTLE_MS = Number(args['settle-ms']);
// Untimed write passes over a scratch image on each cluster before anything is measured (0: none).
const WARM_PASSES = Number(args['osd-warmup-passes']);
// A second rbd-stream arm for the incrementals with other engine options (readGap: the test hook),
// run in the same reps as the defaults and the CLI, the order rotating: an A/B on the same changes.
const VARIANT = args.variant === undefined ? undefined : (JSON.parse(args.variant) as Record<string, number | boolean>);
// The engine's read merging (a test hook): unchanged when not given.
const READ_GAP = args['read-gap-kib'] === undefined ? undefined : Number(args['read-gap-kib']) * 1024;
const IMAGE = Math.max(64 * MiB, Math.round((1024 * MiB * SCALE) / (4 * MiB)) * 4 * MiB);
const DELAYS = parseList(args['target-delay-ms'], '--target-delay-ms');
// Extra librados options (k=v,k=v) for rbd-stream's target connection only (the CLI keeps the conf).
const STREAM_CONFIG: Record<string, string> = Object.fromEntries(
  args['stream-config'].split(',').filter((x) => x !== '').map((kv) => kv.split('=') as [string, string]),
);
const BWLIMITS = parseList(args['bwlimit-mib'], '--bwlimit-mib').filter((x) => x > 0);
const BW_DELAYS = parseList(args['bwlimit-delays'], '--bwlimit-delays');
if (DELAYS.length === 0) throw new RangeError('--target-delay-ms: at least one delay');
if (!['auto', 'fine', 'whole'].includes(ENUM)) throw new RangeError(`--enumeration: auto, fine or whole, got '${ENUM}'`);

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const fmtMiBs = (bps: number) => `${(bps / MiB).toFixed(1)} MiB/s`;
const log = (s: string) => process.stderr.write(`${s}\n`);

function sh(cmd: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const p = spawn('bash', ['-o', 'pipefail', '-c', cmd], { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    p.stderr.on('data', (d) => (err += d));
    p.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`${cmd}: exit ${code}: ${err.slice(-500)}`))));
  });
}
const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
const rbdArgs = (c: TestCluster) => clusterArgs(c).map(q).join(' ');

/**
 * Parses `rbd bench`'s summary line. Its bytes/sec has two significant digits ("1.1 GiB/s"), so the
 * rate is ops/sec (two decimals) × the io size.
 */
function parseBench(out: string, ioBytes: number): { bytesPerSec: number; opsPerSec: number; seconds: number } {
  const m = /elapsed:\s*([\d.]+)\s+ops:\s*(\d+)\s+ops\/sec:\s*([\d.]+)\s+bytes\/sec:/.exec(out);
  if (!m) throw new Error(`cannot parse rbd bench output: ${out.slice(-300)}`);
  return { bytesPerSec: Number(m[3]) * ioBytes, opsPerSec: Number(m[3]), seconds: Number(m[1]) };
}
/** An rbd size argument ('4096', '4K', '1M') in bytes. */
function sizeBytes(s: string): number {
  const m = /^(\d+)([KMG]?)$/.exec(s);
  if (!m) throw new RangeError(`size '${s}': expected digits with an optional K, M or G`);
  return Number(m[1]) * ({ '': 1, K: 1024, M: MiB, G: 1024 * MiB } as Record<string, number>)[m[2]];
}

interface BenchOptions { type?: 'write' | 'read'; threads?: number; extra?: string[] }
async function bench(c: TestCluster, spec: string, ioSize: string, pattern: 'seq' | 'rand', total: number, o: BenchOptions = {}) {
  const out = await rbdCli(c, ['bench', '--io-type', o.type ?? 'write', '--io-size', ioSize, '--io-threads', String(o.threads ?? 16),
    '--io-pattern', pattern, '--io-total', String(total), ...(o.extra ?? []), spec], { timeoutMs: 900_000 });
  return parseBench(out, sizeBytes(ioSize));
}
const fill = (c: TestCluster, spec: string, ioSize: string, pattern: 'seq' | 'rand', total: number) =>
  bench(c, spec, ioSize, pattern, total).then(() => undefined);

function git(...a: string[]): string | undefined {
  try {
    return execFileSync('git', a, { cwd: path.dirname(fileURLToPath(import.meta.url)), encoding: 'utf8' }).trim();
  } catch {
    return undefined;
  }
}

/** A connection to cluster b as seen through one delay. */
interface Target { delayMs: number; c: TestCluster; rados: Rados; pool: Pool; confLines: string[] }

/** CPU seconds one copy cost: the copying process(es), the source cluster's OSD, the target cluster's OSD. */
interface CpuCost { client: number; osdSource?: number; osdTarget?: number }

function medianCpu(xs: CpuCost[]): CpuCost {
  const m = (k: keyof CpuCost) => {
    const v = xs.map((x) => x[k]).filter((x): x is number => x !== undefined && Number.isFinite(x));
    return v.length === xs.length && v.length > 0 ? median(v) : undefined;
  };
  const osdSource = m('osdSource');
  const osdTarget = m('osdTarget');
  return { client: m('client') ?? NaN, ...(osdSource === undefined ? {} : { osdSource }), ...(osdTarget === undefined ? {} : { osdTarget }) };
}

interface Sample {
  rep: number; order: 'stream-first' | 'cli-first'; stream: number; cli: number; ratio: number; lagP99: number;
  dataSeconds: number; dataSecondsMissing: boolean; result: ReplicateResult;
  cpu: { stream: CpuCost; cli: CpuCost };
  /** Full copy only: the ceilings measured in the same rep, bytes per second. */
  ceilings?: RepCeilings;
}
/** The write ceiling into a new image, and the same write while the copy's source is read (the copy ceiling). */
interface RepCeilings { write: number; copyRead: number; copyWrite: number }

// CPU accounting. Both tools share two cores with both clusters' OSDs; where each copy's CPU goes
// (its own process, the source OSD, the target OSD) shows which of them bounds it.
const TICKS = 100; // USER_HZ: /proc times are in 1/100 s on Linux
function procTimes(stat: string): number[] {
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ').map(Number);
}
/** CPU seconds of a process (utime + stime), undefined when it is not there. */
function pidCpu(pid: number | undefined): number | undefined {
  if (pid === undefined) return undefined;
  try {
    const f = procTimes(readFileSync(`/proc/${pid}/stat`, 'utf8'));
    return (f[11] + f[12]) / TICKS;
  } catch {
    return undefined;
  }
}
/** This process's waited-for children (the CLI pipe's shell and its rbd processes), CPU seconds. */
function childrenCpu(): number {
  const f = procTimes(readFileSync('/proc/self/stat', 'utf8'));
  return (f[13] + f[14]) / TICKS;
}
/** pid of a local cluster's osd.0, from the `run dir` in its conf (tools/cluster writes pid files there). */
function osdPid(conf: string): number | undefined {
  try {
    const run = /^\s*run[ _]dir\s*=\s*(\S+)/m.exec(readFileSync(conf, 'utf8'))?.[1];
    return run ? Number(readFileSync(path.join(run, 'osd.0.pid'), 'utf8').trim()) || undefined : undefined;
  } catch {
    return undefined;
  }
}

interface Row { workload: string; stream: string; cli: string; speedup: string; ofCeiling: string; lag: string }

const ALL_WORKLOADS = ['full', 'inc4k', 'inc64k', 'sparse', 'empty'] as const;
type WorkloadKey = (typeof ALL_WORKLOADS)[number];
const WORKLOADS = args.workloads.split(',').map((x) => x.trim()).filter((x) => x !== '') as WorkloadKey[];
for (const w of WORKLOADS) if (!ALL_WORKLOADS.includes(w)) throw new RangeError(`--workloads: unknown '${w}' (${ALL_WORKLOADS.join(', ')})`);

async function main() {
  let setDir: string | undefined;
  const clusters = await resolveClusters({ osdMiB: Number(args['osd-mib']), fastMon: args['fast-mon'], log, onDir: (d) => (setDir = d) });
  const A = clusters.a;
  const B = clusters.b!;
  if (!B) throw new Error('needs two clusters (RBD_STREAM_CONF_B)');
  const confDir = mkdtempSync(path.join(tmpdir(), 'rbd-stream-bench-conf-'));
  const tag = `bench-${process.pid}`;
  // Every image made, by cluster name ('a'/'b') → image name; removed on the way and again at the end.
  const live = new Map<string, { c: TestCluster; name: string }>();
  const mk = (c: TestCluster, name: string) => {
    live.set(`${c.name}/${name}`, { c, name });
    return name;
  };
  // Removal always goes through the undelayed conf (A or B).
  const remove = async (c: TestCluster, name: string) => {
    await rbdCli(c, ['snap', 'purge', '--no-progress', `${c.pool}/${name}`], { timeoutMs: 300_000 }).catch(() => undefined);
    await rbdCli(c, ['rm', '--no-progress', `${c.pool}/${name}`], { timeoutMs: 300_000 }).catch(() => undefined);
    live.delete(`${c.name}/${name}`);
  };
  const conns: Rados[] = [];
  let cleaned = false;
  const cleanup = async () => {
    if (cleaned) return;
    cleaned = true;
    for (const r of conns.reverse()) await r.close().catch(() => undefined);
    for (const { c, name } of [...live.values()].reverse()) await remove(c, name);
    rmSync(confDir, { recursive: true, force: true });
    if (clusters.started && setDir) await down(setDir).catch(() => undefined);
  };
  cleanupOnError = cleanup;
  // SIGTERM too (timeout(1), supervisors): a killed run must not leave its clusters running.
  for (const sig of ['SIGINT', 'SIGTERM'] as const) process.on(sig, () => void cleanup().then(() => process.exit(sig === 'SIGINT' ? 130 : 143)));

  // memstore OSDs report class hdd, whose default 5 s snap-trim sleep lets removed snapshots pile up
  // (each kept snapshot holds whole-object clones in RAM) until the OSD is full.
  for (const c of [A, B]) {
    for (const opt of ['osd_snap_trim_sleep_hdd', 'osd_snap_trim_sleep']) await cephCli(c, ['config', 'set', 'osd', opt, '0']);
  }
  const ra = await Rados.connect({ conf: A.conf, keyring: A.keyring, user: A.user });
  conns.push(ra);
  const pa = await ra.openPool(A.pool);

  const targets = new Map<number, Target>();
  const target = async (delayMs: number): Promise<Target> => {
    let t = targets.get(delayMs);
    if (t) return t;
    let c = B;
    let confLines: string[] = [];
    if (delayMs > 0) {
      const text = delayedConfText(readFileSync(B.conf, 'utf8'), delayMs);
      const conf = path.join(confDir, `b-delay${delayMs}ms.conf`);
      writeFileSync(conf, text);
      c = { ...B, conf };
      confLines = text.split('\n').filter((l) => /^\s*ms_inject_delay/.test(l));
    }
    const rados = await Rados.connect({ conf: c.conf, keyring: c.keyring, user: c.user, config: STREAM_CONFIG });
    conns.push(rados);
    t = { delayMs, c, rados, pool: await rados.openPool(B.pool), confLines };
    targets.set(delayMs, t);
    return t;
  };
  const t0 = await target(0);
  const pidA = osdPid(A.conf);
  const pidB = osdPid(B.conf);
  const selfCpu = () => {
    const u = process.cpuUsage();
    return (u.user + u.system) / 1e6;
  };
  /** Starts measuring a copy's CPU; the returned function ends it. */
  const cpuMeter = (client: () => number) => {
    const c0 = client();
    const a0 = pidCpu(pidA);
    const b0 = pidCpu(pidB);
    return (): CpuCost => {
      const a1 = pidCpu(pidA);
      const b1 = pidCpu(pidB);
      return {
        client: client() - c0,
        ...(a0 !== undefined && a1 !== undefined ? { osdSource: a1 - a0 } : {}),
        ...(b0 !== undefined && b1 !== undefined ? { osdTarget: b1 - b0 } : {}),
      };
    };
  };

  const gitDirty = git('status', '--porcelain', '--', '../lib', '../native', '../binding.gyp');
  const results: Record<string, unknown> = {
    date: new Date().toISOString(), gitCommit: git('rev-parse', 'HEAD'),
    gitDirtyEngineFiles: gitDirty ? gitDirty.split('\n') : [],
    fastMon: args['fast-mon'], reps: REPS, scale: SCALE, imageBytes: IMAGE, concurrency: CONC, chunkSize: CHUNK, inflightBytes: INFLIGHT, depth: DEPTH, enumeration: ENUM, readGap: READ_GAP ?? 'default', warmup: !args['no-warmup'], settleMs: SETTLE_MS, variant: VARIANT, streamConfig: STREAM_CONFIG,
    workloads: WORKLOADS, targetDelaysMs: DELAYS, bwlimitMiB: BWLIMITS, bwlimitDelaysMs: BW_DELAYS,
    clusters: { started: clusters.started, a: A.conf, b: B.conf },
    delayInjection: { type: 'osd', maxSeconds: '2*D/1000', probability: 1, section: 'client', appliesTo: ['rbd-stream target connection', 'rbd create (CLI target)', 'rbd import-diff'] },
  };
  const perDelay = new Map<number, Record<string, unknown>>();
  const dres = (d: number) => {
    let r = perDelay.get(d);
    if (!r) perDelay.set(d, (r = { delayMs: d, workloads: {} as Record<string, unknown> }));
    return r;
  };
  const rows = new Map<number, Row[]>(DELAYS.map((d) => [d, []]));

  const lagMonitor = () => {
    const h = monitorEventLoopDelay({ resolution: 1 });
    h.enable();
    return () => {
      h.disable();
      return h.percentile(99) / 1e6;
    };
  };

  async function streamCopy(t: Target, src: string, from: string | undefined, to: string, dst: string, create: boolean, extra: Record<string, unknown> = {}) {
    const img = await pa.openImage(src);
    try {
      const stop = lagMonitor();
      const start = performance.now();
      // Test hooks among the options (readGap, objectWrites) go to the hooks.
      const { readGap = READ_GAP, objectWrites, ...options } = extra as { readGap?: number; objectWrites?: boolean };
      const opts = {
        source: img, fromSnapshot: from, toSnapshot: to, target: { pool: t.pool, name: dst, create: create ? {} : undefined },
        concurrency: CONC, chunkSize: CHUNK, inflightBytes: INFLIGHT, ...options,
      } as ReplicateOptions;
      const cpu = cpuMeter(selfCpu);
      const r = await replicate(withReplicateTestHooks(opts, {
        enumeration: ENUM, ...(readGap === undefined ? {} : { readGap }), ...(objectWrites === undefined ? {} : { objectWrites }),
      }));
      const secs = (performance.now() - start) / 1000;
      const ds = (r as unknown as { dataSeconds?: unknown }).dataSeconds;
      const missing = typeof ds !== 'number';
      return { secs, lag: stop(), r, dataSeconds: missing ? r.seconds : ds, dataSecondsMissing: missing, cpu: cpu() };
    } finally {
      await img.close();
    }
  }
  /** The CLI pipe's time; `cpu` gets what it cost (its processes are this one's children). */
  async function cliCopy(t: Target, src: string, from: string | undefined, to: string, dst: string, createSize?: number, cpu?: (c: CpuCost) => void) {
    const meter = cpuMeter(childrenCpu);
    const start = performance.now();
    if (createSize !== undefined) await sh(`rbd ${rbdArgs(t.c)} create --size ${createSize}B ${q(`${B.pool}/${dst}`)}`);
    const fromArg = from ? `--from-snap ${q(from)}` : '';
    await sh(`rbd ${rbdArgs(A)} export-diff --no-progress ${fromArg} ${q(`${A.pool}/${src}@${to}`)} - | rbd ${rbdArgs(t.c)} import-diff --no-progress - ${q(`${B.pool}/${dst}`)}`);
    const secs = (performance.now() - start) / 1000;
    cpu?.(meter());
    return secs;
  }
  /** One interleaved rep: rbd-stream first on even reps, the CLI first on odd ones. */
  async function pair(rep: number, runS: () => ReturnType<typeof streamCopy>, runC: (cpu: (c: CpuCost) => void) => Promise<number>): Promise<Sample> {
    let s!: Awaited<ReturnType<typeof streamCopy>>;
    let c = 0;
    let cliCpu: CpuCost = { client: NaN };
    const setCliCpu = (x: CpuCost) => (cliCpu = x);
    const streamFirst = rep % 2 === 0;
    if (streamFirst) { s = await runS(); c = await runC(setCliCpu); } else { c = await runC(setCliCpu); s = await runS(); }
    return {
      rep, order: streamFirst ? 'stream-first' : 'cli-first', stream: s.secs, cli: c, ratio: c / s.secs, lagP99: s.lag,
      dataSeconds: s.dataSeconds, dataSecondsMissing: s.dataSecondsMissing, result: s.r, cpu: { stream: s.cpu, cli: cliCpu },
    };
  }
  function summarize(samples: Sample[]) {
    const ratios = samples.map((x) => x.ratio);
    return {
      samples, medianStream: median(samples.map((x) => x.stream)), medianCli: median(samples.map((x) => x.cli)),
      speedupMedian: median(ratios), speedupMin: Math.min(...ratios), speedupMax: Math.max(...ratios),
      lagP99Ms: Math.max(...samples.map((x) => x.lagP99)), dataSecondsMissing: samples.some((x) => x.dataSecondsMissing),
      medianCpu: { stream: medianCpu(samples.map((x) => x.cpu.stream)), cli: medianCpu(samples.map((x) => x.cpu.cli)) },
    };
  }
  const fmtRatio = (s: ReturnType<typeof summarize>) => `${s.speedupMedian.toFixed(2)}× [${s.speedupMin.toFixed(2)}–${s.speedupMax.toFixed(2)}]`;
  const fmtCpu = (s: ReturnType<typeof summarize>) => {
    const c = (x: CpuCost) => [x.client, x.osdSource, x.osdTarget].map((v) => (v === undefined ? '?' : v.toFixed(2))).join(' / ');
    return `CPU s (client / source OSD / target OSD, medians): rbd-stream ${c(s.medianCpu.stream)}, CLI ${c(s.medianCpu.cli)}`;
  };
  const addRow = (d: number, workload: string, s: ReturnType<typeof summarize>, ofCeiling = '-') =>
    rows.get(d)!.push({ workload, stream: `${s.medianStream.toFixed(2)} s`, cli: `${s.medianCli.toFixed(2)} s`, speedup: fmtRatio(s), ofCeiling, lag: `${s.lagP99Ms.toFixed(1)} ms` });
  const labels: Record<WorkloadKey, string> = {
    full: `(1) full, ${IMAGE / MiB} MiB fully written`,
    inc4k: `(2) incremental, ${Math.round(16384 * SCALE)} × 4 KiB scattered`,
    inc64k: `(3) incremental, ${Math.round(256 * SCALE)} MiB × 64 KiB random`,
    sparse: `(4) full, ${IMAGE / MiB} MiB 5 % allocated`,
    empty: `(5) empty incremental (no change since base)`,
  };
  const targetsRatio: Record<WorkloadKey, { cli?: number; ceiling?: number }> = {
    full: { cli: 1.3, ceiling: 0.9 }, inc4k: { cli: 1.8 }, inc64k: { cli: 1.5 }, sparse: { cli: 3 }, empty: {},
  };

  // --- per delay: injection check (QD1 4 KiB writes, cache off) and write ceiling ----------------------
  const allDelays = [...new Set([0, ...DELAYS, ...(BWLIMITS.length ? BW_DELAYS : [])])];
  const NO_CACHE = ['--rbd_cache=false'];
  const ceilingBench: BenchOptions = { threads: DEPTH, extra: NO_CACHE };
  // A new memstore OSD page-faults in most of what it stores until its heap has grown: on a new cluster
  // (2026-12-07) rbd bench 1 MiB × 80 wrote 300–690 MiB/s for three 1 GiB passes over one image, then
  // 1080–1300 MiB/s, the OSD's CPU per pass falling from 2.0–2.3 s (355k minor faults) to 0.9–1.0 s
  // (3k–16k). Which state the up-front ceiling met depended on what ran before it, so both clusters are
  // warmed first: untimed passes over a scratch image, removed after. Writes into new images (the copies,
  // the in-rep ceilings) still fault in part of their memory, as a removed image's is returned.
  const warmup: Record<string, number[]> = {};
  for (const c of WARM_PASSES > 0 ? [A, B] : []) {
    const w = mk(c, `${tag}-osd-warmup`);
    await rbdCli(c, ['create', '--size', `${IMAGE}B`, `${c.pool}/${w}`]);
    warmup[c.name] = [];
    for (let i = 0; i < WARM_PASSES; i++) warmup[c.name].push((await bench(c, `${c.pool}/${w}`, String(CHUNK), 'seq', IMAGE, ceilingBench)).bytesPerSec);
    await remove(c, w);
    log(`OSD warm-up, cluster ${c.name}: ${warmup[c.name].map(fmtMiBs).join(', ')}`);
  }
  results.osdWarmup = { passes: WARM_PASSES, bytesPerSec: warmup };
  const ceilImg = mk(B, `${tag}-ceiling`);
  await t0.pool.createImage(ceilImg, IMAGE);
  let baseOpMs = 0;
  const ceilings = new Map<number, number>();
  for (const d of allDelays) {
    const t = await target(d);
    const qd1 = await bench(t.c, `${B.pool}/${ceilImg}`, '4096', 'seq', MiB, { threads: 1, extra: NO_CACHE });
    const meanOpMs = 1000 / qd1.opsPerSec;
    if (d === 0) baseOpMs = meanOpMs;
    const expectedIops = d > 0 ? 1000 / d : undefined;
    const ratio = expectedIops ? qd1.opsPerSec / expectedIops : undefined;
    const warning = ratio !== undefined && (ratio < 0.5 || ratio > 1.5)
      ? `delay ${d} ms: QD1 4 KiB write ${qd1.opsPerSec.toFixed(0)} IOPS, expected ~${expectedIops!.toFixed(0)} — injection may not have taken effect` : undefined;
    if (warning) log(`WARNING: ${warning}`);
    const r = dres(d);
    r.conf = t.c.conf;
    r.confLines = t.confLines;
    r.injectionCheck = {
      command: 'rbd bench --io-type write --io-size 4096 --io-threads 1 --io-total 1M --io-pattern seq --rbd_cache=false',
      iops: qd1.opsPerSec, meanOpMs, impliedMeanDelayMs: meanOpMs - baseOpMs, expectedIops, iopsOfExpected: ratio, warning,
    };
    log(`delay ${d} ms: QD1 4 KiB ${qd1.opsPerSec.toFixed(0)} IOPS (mean op ${meanOpMs.toFixed(2)} ms, implied delay ${(meanOpMs - baseOpMs).toFixed(2)} ms)`);
    if (!DELAYS.includes(d)) continue;
    const samples: number[] = [];
    for (let i = 0; i < REPS; i++) samples.push((await bench(t.c, `${B.pool}/${ceilImg}`, String(CHUNK), 'seq', IMAGE, ceilingBench)).bytesPerSec);
    const ceiling = median(samples);
    ceilings.set(d, ceiling);
    r.ceiling = { command: `rbd bench --io-type write --io-size ${CHUNK} --io-threads ${DEPTH} --io-pattern seq --io-total ${IMAGE} --rbd_cache=false`,
      ioSize: CHUNK, ioThreads: DEPTH, samplesBytesPerSec: samples, medianBytesPerSec: ceiling };
    log(`delay ${d} ms: write ceiling (rbd bench ${CHUNK / MiB} MiB × ${DEPTH}, cache off): ${fmtMiBs(ceiling)}`);
  }
  await remove(B, ceilImg);

  /** Awaits a run into a new image on cluster b, then removes the image (untimed), whatever the outcome. */
  const removeAfter = async <T>(run: Promise<T>, dst: string) => { try { return await run; } finally { await remove(B, dst); } };

  // The ceilings again in every rep of the full copy, each into a new image as the copies write, so
  // that they meet the OSDs in the state the copies did. The copy ceiling reads the copy's own source
  // on cluster a while writing b: on one host both clusters share the CPU a copy needs. Alternating
  // which of the two goes first.
  async function repCeilings(t: Target, src: string, rep: number): Promise<RepCeilings> {
    const into = async <T>(run: (spec: string) => Promise<T>): Promise<T> => {
      const img = mk(B, `${tag}-ceiling-r${rep}`);
      await t0.pool.createImage(img, IMAGE);
      return removeAfter(run(`${B.pool}/${img}`), img);
    };
    const write = () => into((spec) => bench(t.c, spec, String(CHUNK), 'seq', IMAGE, ceilingBench));
    const copy = () => into((spec) => Promise.all([
      bench(A, `${A.pool}/${src}`, String(CHUNK), 'seq', IMAGE, { ...ceilingBench, type: 'read' }),
      bench(t.c, spec, String(CHUNK), 'seq', IMAGE, ceilingBench),
    ]));
    let w: Awaited<ReturnType<typeof write>>;
    let c: Awaited<ReturnType<typeof copy>>;
    if (rep % 2 === 0) { w = await write(); c = await copy(); } else { c = await copy(); w = await write(); }
    return { write: w.bytesPerSec, copyRead: c[0].bytesPerSec, copyWrite: c[1].bytesPerSec };
  }

  // --- full copies: (1) fully written, (4) 5 % allocated; bandwidth-limited copies of (1)'s source ---
  async function fullCase(key: 'full' | 'sparse', prepare: (spec: string) => Promise<void>) {
    const src = mk(A, `${tag}-${key}`);
    await pa.createImage(src, IMAGE);
    await prepare(`${A.pool}/${src}`);
    await rbdCli(A, ['snap', 'create', `${A.pool}/${src}@s`]);
    // (1)'s source is also made when only the bandwidth-limited copies want it.
    for (const d of WORKLOADS.includes(key) ? DELAYS : []) {
      const t = await target(d);
      const samples: Sample[] = [];
      for (let i = 0; i < REPS; i++) {
        const d1 = mk(B, `${tag}-${key}-d${d}-s${i}`);
        const d2 = mk(B, `${tag}-${key}-d${d}-c${i}`);
        // Each target is removed right after its own run (untimed), so the second tool of a rep does
        // not copy into a target cluster still holding the first one's 1 GiB: with both kept until
        // the rep ended, whichever ran second was slower (docs/benchmarks.md, order effect).
        const sample = await pair(i, () => removeAfter(streamCopy(t, src, undefined, 's', d1, true), d1), (cpu) => removeAfter(cliCopy(t, src, undefined, 's', d2, IMAGE, cpu), d2));
        samples.push(key === 'full' ? { ...sample, ceilings: await repCeilings(t, src, i) } : sample);
      }
      const s = summarize(samples);
      const ceiling = ceilings.get(d)!;
      // Data phase alone (enumeration + data), excluding the control steps both tools share.
      const dataRate = median(samples.map((x) => IMAGE / x.dataSeconds));
      const wallRate = IMAGE / s.medianStream;
      // Against the ceilings measured in the same rep (median, min–max over reps).
      const ofRep = (which: 'write' | 'copy') => {
        // The copy ceiling is the pair's slower stream.
        const xs = samples.map((x) => IMAGE / x.dataSeconds / (which === 'write' ? x.ceilings!.write : Math.min(x.ceilings!.copyRead, x.ceilings!.copyWrite)));
        return { median: median(xs), min: Math.min(...xs), max: Math.max(...xs) };
      };
      const inRep = key === 'full' ? { write: ofRep('write'), copy: ofRep('copy') } : undefined;
      (dres(d).workloads as Record<string, unknown>)[key] = { label: labels[key], ...s, dataBytesPerSec: dataRate,
        wallBytesPerSec: wallRate, dataOfCeiling: dataRate / ceiling, wallOfCeiling: wallRate / ceiling,
        ...(inRep ? { dataOfRepCeiling: inRep.write, dataOfRepCopyCeiling: inRep.copy } : {}), targets: targetsRatio[key] };
      const fmtOf = (x: { median: number; min: number; max: number }) => `${x.median.toFixed(2)} [${x.min.toFixed(2)}–${x.max.toFixed(2)}]`;
      addRow(d, labels[key], s, inRep
        ? `${fmtOf(inRep.write)}; copy ceiling ${fmtOf(inRep.copy)}${s.dataSecondsMissing ? ' (wall: no dataSeconds)' : ''}` : '-');
      log(`delay ${d} ms: ${labels[key]}: ${fmtRatio(s)}; ${fmtCpu(s)}`);
    }
    if (key === 'full' && BWLIMITS.length) {
      const out: unknown[] = [];
      results.bwlimit = out;
      for (const d of BW_DELAYS) {
        const t = await target(d);
        for (const mib of BWLIMITS) {
          const dst = mk(B, `${tag}-bw${mib}-d${d}`);
          const limit = mib * MiB;
          try {
            // `bandwidth` is cast through: the option may be newer than these types.
            const s = await streamCopy(t, src, undefined, 's', dst, true, { bandwidth: limit });
            const bytes = s.r.bytesWritten + s.r.bytesZeroed;
            const achieved = bytes / s.dataSeconds;
            const error = achieved / limit - 1;
            out.push({ delayMs: d, limitMiB: mib, limitBytesPerSec: limit, bytes, seconds: s.secs, dataSeconds: s.dataSeconds,
              dataSecondsMissing: s.dataSecondsMissing, achievedBytesPerSec: achieved, error, withinTolerance: Math.abs(error) <= 0.1,
              lagP99Ms: s.lag, result: s.r });
            log(`delay ${d} ms: bwlimit ${mib} MiB/s: achieved ${fmtMiBs(achieved)} (${(error * 100).toFixed(1)} %)`);
          } catch (e) {
            const msg = e instanceof Error ? e.message : String(e);
            if (!(e instanceof TypeError && /bandwidth/.test(msg))) throw e;
            out.push({ delayMs: d, limitMiB: mib, unsupported: true, error: msg });
            log(`delay ${d} ms: bwlimit ${mib} MiB/s: not supported by this build (${msg})`);
          }
          await remove(B, dst);
        }
      }
    }
    await remove(A, src);
  }

  const variantRows: string[] = [];
  // --- incrementals: (2) 16k × 4 KiB scattered, (3) 256 MiB × 64 KiB random, (5) empty ------------
  async function incCase(key: 'inc4k' | 'inc64k' | 'empty', prepare: (spec: string) => Promise<void>, change?: (spec: string) => Promise<void>) {
    const src = mk(A, `${tag}-${key}`);
    await pa.createImage(src, IMAGE);
    await prepare(`${A.pool}/${src}`);
    await rbdCli(A, ['snap', 'create', `${A.pool}/${src}@s0`]);
    // Two targets kept in step with the source chain across all delays: one by rbd-stream, one by the
    // CLI (both seeded undelayed, not measured). Older snapshots are removed as the chain advances
    // (memstore OSDs copy whole objects for every snapshot kept).
    const t1 = mk(B, `${tag}-${key}-s`);
    const t2 = mk(B, `${tag}-${key}-c`);
    const t3 = VARIANT ? mk(B, `${tag}-${key}-v`) : undefined;
    // The first copy after the source changed runs markedly slower, whichever tool it is (measured
    // 2026-12-06: up to 1.5× for 16k × 4 KiB at 10 and 25 ms), so an untimed CLI copy into a
    // target of its own goes first in every rep; --no-warmup drops it.
    const tw = args['no-warmup'] ? undefined : mk(B, `${tag}-${key}-w`);
    await streamCopy(t0, src, undefined, 's0', t1, true);
    await cliCopy(t0, src, undefined, 's0', t2, IMAGE);
    if (t3) await streamCopy(t0, src, undefined, 's0', t3, true);
    if (tw) await cliCopy(t0, src, undefined, 's0', tw, IMAGE);
    const extraTargets = [t3, tw].filter((x) => x !== undefined);
    let k = 0;
    for (const d of DELAYS) {
      const t = await target(d);
      const variantRatios: number[] = [];
      const samples: Sample[] = [];
      for (let i = 0; i < REPS; i++) {
        if (change) await change(`${A.pool}/${src}`);
        const from = `s${k}`;
        const to = `s${k + 1}`;
        await rbdCli(A, ['snap', 'create', `${A.pool}/${src}@${to}`]);
        if (SETTLE_MS > 0) await new Promise((r) => setTimeout(r, SETTLE_MS));
        if (tw) await cliCopy(t, src, from, to, tw);
        let variantSecs = 0;
        const runVariant = async () => {
          if (t3) variantSecs = (await streamCopy(t, src, from, to, t3, false, VARIANT)).secs;
        };
        // With a variant, it runs first, between or last in turn (rep % 3).
        if (t3 && i % 3 === 0) await runVariant();
        const sample = await pair(i, () => streamCopy(t, src, from, to, t1, false), async (cpu) => {
          const c = await cliCopy(t, src, from, to, t2, undefined, cpu);
          if (t3 && i % 3 === 1) await runVariant();
          return c;
        });
        if (t3 && i % 3 === 2) await runVariant();
        if (t3) variantRatios.push(sample.cli / variantSecs);
        samples.push(t3 ? { ...sample, variantSeconds: variantSecs } as Sample : sample);
        await Promise.all([
          rbdCli(A, ['snap', 'rm', '--no-progress', `${A.pool}/${src}@${from}`]),
          rbdCli(B, ['snap', 'rm', '--no-progress', `${B.pool}/${t1}@${from}`]),
          rbdCli(B, ['snap', 'rm', '--no-progress', `${B.pool}/${t2}@${from}`]),
          ...extraTargets.map((x) => rbdCli(B, ['snap', 'rm', '--no-progress', `${B.pool}/${x}@${from}`])),
        ]);
        k++;
      }
      const s = summarize(samples);
      const variant = t3 ? { options: VARIANT, speedupMedian: median(variantRatios), speedupMin: Math.min(...variantRatios), speedupMax: Math.max(...variantRatios) } : undefined;
      (dres(d).workloads as Record<string, unknown>)[key] = { label: labels[key], ...s, targets: targetsRatio[key], ...(variant ? { variant } : {}) };
      addRow(d, labels[key], s);
      log(`delay ${d} ms: ${labels[key]}: ${fmtRatio(s)}; ${fmtCpu(s)}`);
      if (variant) {
        variantRows.push(`delay ${d} ms: ${labels[key]}: defaults ${fmtRatio(s)}, variant ${JSON.stringify(VARIANT)} ${variant.speedupMedian.toFixed(2)}× [${variant.speedupMin.toFixed(2)}–${variant.speedupMax.toFixed(2)}]`);
        log(variantRows[variantRows.length - 1]);
      }
    }
    await Promise.all([remove(A, src), remove(B, t1), remove(B, t2), ...extraTargets.map((x) => remove(B, x))]);
  }

  const allocated = Math.round((IMAGE * 0.05) / (64 * 1024)) * 64 * 1024;
  const fullyWritten = (spec: string) => fill(A, spec, String(4 * MiB), 'seq', IMAGE);
  const fivePercent = (spec: string) => fill(A, spec, String(64 * 1024), 'rand', allocated);
  const on = (k: WorkloadKey) => WORKLOADS.includes(k);
  if (on('full') || BWLIMITS.length) await fullCase('full', fullyWritten);
  if (on('inc4k')) await incCase('inc4k', fullyWritten, (spec) => fill(A, spec, '4096', 'rand', Math.round(16384 * SCALE) * 4096));
  if (on('inc64k')) await incCase('inc64k', fullyWritten, (spec) => fill(A, spec, String(64 * 1024), 'rand', Math.round(256 * SCALE) * MiB));
  if (on('sparse')) await fullCase('sparse', fivePercent);
  if (on('empty')) await incCase('empty', fivePercent);

  // Saved now and again at the end: a failure in the RSS part must not lose the copies' results.
  const resultsFile = path.join(path.dirname(fileURLToPath(import.meta.url)), 'results', `replicate-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
  const save = () => {
    results.delays = allDelays.map((d) => perDelay.get(d));
    mkdirSync(path.dirname(resultsFile), { recursive: true });
    writeFileSync(resultsFile, `${JSON.stringify(results, null, 2)}\n`);
  };
  save();

  // --- peak RSS while copying a large image (per delay) ----------------------------------------------
  if (!args['no-rss']) {
    const bytes = Math.round(Number(args['rss-gib']) * 1024 * SCALE) * MiB;
    // The child runs the built package (dist/), as users do: build it from this tree first.
    await sh(`npx tsc -p ${q(fileURLToPath(new URL('../tsconfig.build.json', import.meta.url)))}`);
    const src = mk(A, `${tag}-rss`);
    await pa.createImage(src, bytes);
    await fill(A, `${A.pool}/${src}`, String(4 * MiB), 'seq', bytes);
    await rbdCli(A, ['snap', 'create', `${A.pool}/${src}@s`]);
    for (const d of DELAYS) {
      const t = await target(d);
      const dst = mk(B, `${tag}-rss-d${d}`);
      // A fresh child process does the copy: its VmHWM is the copy's peak RSS, not this process's history.
      const out = await new Promise<string>((resolve, reject) => {
        const here = path.dirname(fileURLToPath(import.meta.url));
        const p = spawn(process.execPath, [path.join(here, 'replicate-rss-child.mjs')], {
          env: { ...process.env, RSS_A: JSON.stringify(A), RSS_B: JSON.stringify(t.c), RSS_SRC: src, RSS_DST: dst,
            RSS_CONC: String(CONC), RSS_CHUNK: String(CHUNK), RSS_INFLIGHT: String(INFLIGHT), RSS_B_CONFIG: JSON.stringify(STREAM_CONFIG) },
          stdio: ['ignore', 'pipe', 'inherit'],
        });
        let o = '';
        p.stdout.on('data', (x) => (o += x));
        p.on('exit', (code) => (code === 0 ? resolve(o) : reject(new Error(`rss child exited ${code}`))));
      });
      const m = JSON.parse(out.trim().split('\n').pop()!) as { rssBefore: number; peakRss: number; seconds: number; lagP99Ms: number };
      await remove(B, dst);
      dres(d).rss = { bytes, ...m, target: 256 * MiB };
      rows.get(d)!.push({ workload: `peak RSS copying ${bytes / MiB} MiB`, stream: `${(m.peakRss / MiB).toFixed(0)} MiB (base ${(m.rssBefore / MiB).toFixed(0)} MiB, ≤ 256)`,
        cli: '-', speedup: '-', ofCeiling: '-', lag: `${m.lagP99Ms.toFixed(1)} ms` });
      log(`delay ${d} ms: peak RSS ${(m.peakRss / MiB).toFixed(0)} MiB`);
    }
    await remove(A, src);
  }

  save();
  await cleanup();

  // --- output ------------------------------------------------------------------------------------------
  const head: Row = { workload: 'workload', stream: 'rbd-stream (median)', cli: 'CLI export-diff|import-diff', speedup: 'speedup median [min–max]', ofCeiling: 'data phase of ceiling', lag: 'lag p99' };
  const cols = Object.keys(head) as (keyof Row)[];
  console.log(`reps ${REPS}, scale ${SCALE}, image ${IMAGE / MiB} MiB, engine ${CHUNK / MiB} MiB chunks, ${CONC} ops / ${INFLIGHT / MiB} MiB in flight, enumeration ${ENUM}`);
  for (const row of variantRows) console.log(row);
  for (const d of DELAYS) {
    const r = perDelay.get(d)!;
    const inj = r.injectionCheck as { iops: number; impliedMeanDelayMs: number; warning?: string };
    const all = [head, ...rows.get(d)!];
    const w = cols.map((k) => Math.max(...all.map((x) => x[k].length)));
    console.log(`\ntarget delay ${d} ms (mean, injected on the target side): QD1 4 KiB ${inj.iops.toFixed(0)} IOPS, implied delay ${inj.impliedMeanDelayMs.toFixed(2)} ms; `
      + `ceiling ${fmtMiBs(ceilings.get(d)!)} (rbd bench ${CHUNK / MiB} MiB × ${DEPTH}, cache off)${inj.warning ? ` — WARNING: ${inj.warning}` : ''}`);
    for (const x of all) console.log(cols.map((k, i) => x[k].padEnd(w[i])).join(' | '));
  }
  if (Array.isArray(results.bwlimit)) {
    console.log('\nbandwidth limit (full copy of (1)):');
    for (const b of results.bwlimit as Record<string, unknown>[]) {
      if (b.unsupported) console.log(`  delay ${b.delayMs} ms, ${b.limitMiB} MiB/s: not supported (${b.error})`);
      else console.log(`  delay ${b.delayMs} ms, ${b.limitMiB} MiB/s: achieved ${fmtMiBs(b.achievedBytesPerSec as number)} (${((b.error as number) * 100).toFixed(1)} %, ${b.withinTolerance ? 'within' : 'OUTSIDE'} ±10 %)${b.dataSecondsMissing ? ' [no dataSeconds: wall time]' : ''}`);
    }
  }
  // Markdown: one row per workload, one column per delay, cells "ratio× (min–max)" (CLI time / rbd-stream time).
  console.log(`\nspeedup vs CLI pipe (CLI time / rbd-stream time, median of ${REPS} (min–max)), by mean target delay:\n`);
  console.log(`| workload | ${DELAYS.map((d) => `${d} ms`).join(' | ')} |`);
  console.log(`|---|${DELAYS.map(() => '---').join('|')}|`);
  for (const key of WORKLOADS) {
    const cells = DELAYS.map((d) => {
      const s = (perDelay.get(d)!.workloads as Record<string, ReturnType<typeof summarize>>)[key];
      return `${s.speedupMedian.toFixed(2)}× (${s.speedupMin.toFixed(2)}–${s.speedupMax.toFixed(2)})`;
    });
    console.log(`| ${labels[key]} | ${cells.join(' | ')} |`);
  }
  console.log(`\nresults: ${resultsFile}`);
}

let cleanupOnError: (() => Promise<void>) | undefined;
main().catch(async (e) => {
  console.error(e);
  await cleanupOnError?.();
  process.exit(1);
});
