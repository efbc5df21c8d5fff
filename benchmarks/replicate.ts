/**
 * replicate() vs `rbd export-diff … - | rbd import-diff - …` (same clusters) and vs the target's
 * `rbd bench` write ceiling, on two local clusters (a → b).
 *
 *   npx tsx benchmarks/replicate.ts [--reps 3] [--scale 1] [--rss-gib 4] [--no-rss] [--concurrency 16] [--chunk-mib 1] [--enumeration auto|fine|whole] [--fast-mon]
 *
 * Uses the clusters named by RBD_STREAM_CONF_A/B, or starts its own set (OSDs with --osd-mib, default
 * 6000 so the 4 GiB RSS case fits) and stops it at the end. --scale shrinks every workload (0.25 → 256 MiB
 * images) for a quick run. Repetitions are interleaved (rbd-stream and CLI alternate which goes first);
 * medians and ratios go to stdout, everything to benchmarks/results/replicate-<time>.json.
 *
 * Workloads: (1) full copy of a fully written image (1 GiB); (2) incremental of ~16k scattered 4 KiB
 * writes; (3) incremental of 256 MiB of random 64 KiB writes; (4) full copy of a 5 % allocated image.
 * Source data is written with `rbd bench` (non-zero pattern). Also: peak RSS while copying --rss-gib GiB,
 * and event-loop lag p99 (perf_hooks.monitorEventLoopDelay) during every rbd-stream copy.
 *
 * --fast-mon starts the clusters with a 50 ms mon propose interval (scripts/cluster.ts): both tools end
 * every copy by creating a snapshot on the target, which otherwise costs ~0.9 s of mon commit each.
 */
import { spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { Rados, replicate, type Pool } from '../lib/index.js';
import { withReplicateTestHooks } from '../lib/transfer/replicate/options.js';
import { cephCli, clusterArgs, resolveClusters, rbdCli, type TestCluster } from '../test/support/clusters.js';
import { down } from '../tools/cluster/index.js';

const MiB = 1 << 20;
const { values: args } = parseArgs({
  options: {
    reps: { type: 'string', default: '3' },
    scale: { type: 'string', default: '1' },
    'rss-gib': { type: 'string', default: '4' },
    'no-rss': { type: 'boolean', default: false },
    'osd-mib': { type: 'string', default: '6000' },
    concurrency: { type: 'string', default: '16' },
    'chunk-mib': { type: 'string', default: '1' },
    enumeration: { type: 'string', default: 'auto' },
    'fast-mon': { type: 'boolean', default: false },
  },
});
const REPS = Number(args.reps);
const SCALE = Number(args.scale);
const CONC = Number(args.concurrency);
const CHUNK = Number(args['chunk-mib']) * MiB;
const ENUM = args.enumeration as 'auto' | 'fine' | 'whole';
const IMAGE = Math.max(64 * MiB, Math.round((1024 * MiB * SCALE) / (4 * MiB)) * 4 * MiB);

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

/** Parses `rbd bench` "bytes/sec: 123 MiB/s" into bytes per second. */
function parseBench(out: string): number {
  const m = /elapsed:\s*([\d.]+)\s+ops:\s*(\d+)\s+ops\/sec:\s*([\d.]+)\s+bytes\/sec:\s*([\d.]+)\s*(\w+)\/s/.exec(out);
  if (!m) throw new Error(`cannot parse rbd bench output: ${out.slice(-300)}`);
  const unit = { B: 1, KiB: 1024, MiB: MiB, GiB: 1024 * MiB }[m[5]] ?? 1;
  return Number(m[4]) * unit;
}

async function bench(c: TestCluster, spec: string, ioSize: string, pattern: 'seq' | 'rand', total: number, threads = 16): Promise<number> {
  const out = await rbdCli(c, ['bench', '--io-type', 'write', '--io-size', ioSize, '--io-threads', String(threads),
    '--io-pattern', pattern, '--io-total', String(total), spec], { timeoutMs: 900_000 });
  return parseBench(out);
}

interface Sample { stream: number; cli: number; lagP99: number; bytesWritten: number; bytesRead: number }

async function main() {
  let setDir: string | undefined;
  const clusters = await resolveClusters({ osdMiB: Number(args['osd-mib']), fastMon: args['fast-mon'], log, onDir: (d) => (setDir = d) });
  const A = clusters.a;
  const B = clusters.b!;
  const cleanupSet = async () => {
    if (clusters.started && setDir) await down(setDir).catch(() => undefined);
  };
  cleanupOnError = cleanupSet;
  process.on('SIGINT', () => void cleanupSet().then(() => process.exit(130)));
  // memstore OSDs report class hdd, whose default 5 s snap-trim sleep lets removed snapshots pile up
  // (each kept snapshot holds whole-object clones in RAM) until the OSD is full.
  for (const c of [A, B]) {
    for (const opt of ['osd_snap_trim_sleep_hdd', 'osd_snap_trim_sleep']) await cephCli(c, ['config', 'set', 'osd', opt, '0']);
  }
  const ra = await Rados.connect({ conf: A.conf, keyring: A.keyring, user: A.user });
  const rb = await Rados.connect({ conf: B.conf, keyring: B.keyring, user: B.user });
  const pa = await ra.openPool(A.pool);
  const pb = await rb.openPool(B.pool);
  const tag = `bench-${process.pid}`;
  const made: [TestCluster, Pool, string][] = [];
  const mk = (c: TestCluster, p: Pool, n: string) => {
    made.push([c, p, n]);
    return n;
  };
  const remove = async (c: TestCluster, name: string) => {
    await rbdCli(c, ['snap', 'purge', '--no-progress', `${c.pool}/${name}`]).catch(() => undefined);
    await rbdCli(c, ['rm', '--no-progress', `${c.pool}/${name}`], { timeoutMs: 300_000 }).catch(() => undefined);
  };

  const results: Record<string, unknown> = {
    date: new Date().toISOString(), fastMon: args['fast-mon'], reps: REPS, scale: SCALE, imageBytes: IMAGE, concurrency: CONC, chunkSize: CHUNK, enumeration: ENUM,
  };
  const rows: string[][] = [];

  const lagMonitor = () => {
    const h = monitorEventLoopDelay({ resolution: 1 });
    h.enable();
    return () => {
      h.disable();
      return h.percentile(99) / 1e6;
    };
  };

  async function streamCopy(src: string, from: string | undefined, to: string, dst: string, create: boolean, enumeration = ENUM) {
    const img = await pa.openImage(src);
    try {
      const stop = lagMonitor();
      const t0 = performance.now();
      const r = await replicate(withReplicateTestHooks({
        source: img, fromSnapshot: from, toSnapshot: to, target: { pool: pb, name: dst, create: create ? {} : undefined },
        concurrency: CONC, chunkSize: CHUNK,
      }, { enumeration }));
      const secs = (performance.now() - t0) / 1000;
      return { secs, lag: stop(), r };
    } finally {
      await img.close();
    }
  }
  async function cliCopy(src: string, from: string | undefined, to: string, dst: string, createSize?: number) {
    const t0 = performance.now();
    if (createSize !== undefined) await sh(`rbd ${rbdArgs(B)} create --size ${createSize}B ${q(`${B.pool}/${dst}`)}`);
    const fromArg = from ? `--from-snap ${q(from)}` : '';
    await sh(`rbd ${rbdArgs(A)} export-diff --no-progress ${fromArg} ${q(`${A.pool}/${src}@${to}`)} - | rbd ${rbdArgs(B)} import-diff --no-progress - ${q(`${B.pool}/${dst}`)}`);
    return (performance.now() - t0) / 1000;
  }

  // Target write ceiling: rbd bench on cluster b at the copy's block size and concurrency.
  const ceilImg = mk(B, pb, `${tag}-ceiling`);
  await pb.createImage(ceilImg, IMAGE);
  const ceilings: number[] = [];
  for (let i = 0; i < REPS; i++) ceilings.push(await bench(B, `${B.pool}/${ceilImg}`, String(CHUNK), 'seq', IMAGE, CONC));
  await remove(B, ceilImg);
  const ceiling = median(ceilings);
  results.ceilingBytesPerSec = ceiling;
  log(`target write ceiling (rbd bench ${CHUNK / MiB} MiB × ${CONC}): ${fmtMiBs(ceiling)}`);

  // --- full copies: (1) fully written, (4) 5 % allocated -------------------------------------------
  async function fullCase(key: string, label: string, fill: (spec: string) => Promise<void>, targetRatio: { cli: number; ceiling?: number }) {
    const src = mk(A, pa, `${tag}-${key}`);
    await pa.createImage(src, IMAGE);
    await fill(`${A.pool}/${src}`);
    await rbdCli(A, ['snap', 'create', `${A.pool}/${src}@s`]);
    const samples: Sample[] = [];
    for (let i = 0; i < REPS; i++) {
      const d1 = `${tag}-${key}-s${i}`;
      const d2 = `${tag}-${key}-c${i}`;
      let s!: Awaited<ReturnType<typeof streamCopy>>;
      let c = 0;
      const runS = async () => (s = await streamCopy(src, undefined, 's', d1, true));
      const runC = async () => (c = await cliCopy(src, undefined, 's', d2, IMAGE));
      if (i % 2 === 0) { await runS(); await runC(); } else { await runC(); await runS(); }
      samples.push({ stream: s.secs, cli: c, lagP99: s.lag, bytesWritten: s.r.bytesWritten, bytesRead: s.r.bytesRead });
      await Promise.all([remove(B, d1), remove(B, d2)]);
    }
    await remove(A, src);
    const ms = median(samples.map((x) => x.stream));
    const mc = median(samples.map((x) => x.cli));
    const rate = IMAGE / ms;
    const row = { samples, medianStream: ms, medianCli: mc, speedupVsCli: mc / ms, streamBytesPerSec: rate,
      ofCeiling: rate / ceiling, lagP99Ms: Math.max(...samples.map((x) => x.lagP99)), targets: targetRatio };
    results[key] = row;
    rows.push([label, `${ms.toFixed(2)} s`, `${mc.toFixed(2)} s`, `${(mc / ms).toFixed(2)}× (≥ ${targetRatio.cli})`,
      targetRatio.ceiling ? `${(rate / ceiling).toFixed(2)} (≥ ${targetRatio.ceiling})` : `${(rate / ceiling).toFixed(2)}`,
      `${row.lagP99Ms.toFixed(1)} ms`]);
  }

  // --- incrementals: (2) 16k × 4 KiB scattered, (3) 256 MiB × 64 KiB random ------------------------
  async function incCase(key: string, label: string, ioSize: string, bytes: number, targetCli: number) {
    const src = mk(A, pa, `${tag}-${key}`);
    await pa.createImage(src, IMAGE);
    await bench(A, `${A.pool}/${src}`, String(4 * MiB), 'seq', IMAGE); // a fully written base
    await rbdCli(A, ['snap', 'create', `${A.pool}/${src}@s0`]);
    // Two targets kept in step with the source chain: one by rbd-stream, one by the CLI. Older snapshots
    // are removed as the chain advances (memstore OSDs copy whole objects for every snapshot kept).
    const t1 = mk(B, pb, `${tag}-${key}-s`);
    const t2 = mk(B, pb, `${tag}-${key}-c`);
    await streamCopy(src, undefined, 's0', t1, true);
    await cliCopy(src, undefined, 's0', t2, IMAGE);
    const samples: Sample[] = [];
    for (let i = 0; i < REPS; i++) {
      await bench(A, `${A.pool}/${src}`, ioSize, 'rand', bytes);
      const from = `s${i}`;
      const to = `s${i + 1}`;
      await rbdCli(A, ['snap', 'create', `${A.pool}/${src}@${to}`]);
      let s!: Awaited<ReturnType<typeof streamCopy>>;
      let c = 0;
      const runS = async () => (s = await streamCopy(src, from, to, t1, false));
      const runC = async () => (c = await cliCopy(src, from, to, t2));
      if (i % 2 === 0) { await runS(); await runC(); } else { await runC(); await runS(); }
      samples.push({ stream: s.secs, cli: c, lagP99: s.lag, bytesWritten: s.r.bytesWritten, bytesRead: s.r.bytesRead });
      await Promise.all([
        rbdCli(A, ['snap', 'rm', '--no-progress', `${A.pool}/${src}@${from}`]),
        rbdCli(B, ['snap', 'rm', '--no-progress', `${B.pool}/${t1}@${from}`]),
        rbdCli(B, ['snap', 'rm', '--no-progress', `${B.pool}/${t2}@${from}`]),
      ]);
    }
    await Promise.all([remove(A, src), remove(B, t1), remove(B, t2)]);
    const ms = median(samples.map((x) => x.stream));
    const mc = median(samples.map((x) => x.cli));
    const row = { samples, medianStream: ms, medianCli: mc, speedupVsCli: mc / ms,
      lagP99Ms: Math.max(...samples.map((x) => x.lagP99)), targets: { cli: targetCli } };
    results[key] = row;
    rows.push([label, `${ms.toFixed(2)} s`, `${mc.toFixed(2)} s`, `${(mc / ms).toFixed(2)}× (≥ ${targetCli})`, '-',
      `${row.lagP99Ms.toFixed(1)} ms`]);
  }

  const allocated = Math.round((IMAGE * 0.05) / (64 * 1024)) * 64 * 1024;
  await fullCase('full', `(1) full, ${IMAGE / MiB} MiB fully written`, (spec) => bench(A, spec, String(4 * MiB), 'seq', IMAGE).then(() => undefined), { cli: 1.3, ceiling: 0.9 });
  await incCase('inc4k', `(2) incremental, ${Math.round(16384 * SCALE)} × 4 KiB scattered`, '4096', Math.round(16384 * SCALE) * 4096, 1.8);
  await incCase('inc64k', `(3) incremental, ${Math.round(256 * SCALE)} MiB × 64 KiB random`, String(64 * 1024), Math.round(256 * SCALE) * MiB, 1.5);
  await fullCase('sparse', `(4) full, ${IMAGE / MiB} MiB 5 % allocated`, (spec) => bench(A, spec, String(64 * 1024), 'rand', allocated).then(() => undefined), { cli: 3 });

  // --- peak RSS while copying a large image ----------------------------------------------------------
  if (!args['no-rss']) {
    const bytes = Math.round(Number(args['rss-gib']) * 1024 * SCALE) * MiB;
    const src = mk(A, pa, `${tag}-rss`);
    const dst = mk(B, pb, `${tag}-rss-d`);
    await pa.createImage(src, bytes);
    await bench(A, `${A.pool}/${src}`, String(4 * MiB), 'seq', bytes);
    await rbdCli(A, ['snap', 'create', `${A.pool}/${src}@s`]);
    // A fresh child process does the copy: its VmHWM is the copy's peak RSS, not this process's history.
    const out = await new Promise<string>((resolve, reject) => {
      const here = path.dirname(fileURLToPath(import.meta.url));
      const p = spawn(process.execPath, ['--import', 'tsx', path.join(here, 'replicate-rss-child.ts')], {
        env: { ...process.env, RSS_A: JSON.stringify(A), RSS_B: JSON.stringify(B), RSS_SRC: src, RSS_DST: dst,
          RSS_CONC: String(CONC), RSS_CHUNK: String(CHUNK) },
        stdio: ['ignore', 'pipe', 'inherit'],
      });
      let o = '';
      p.stdout.on('data', (d) => (o += d));
      p.on('exit', (code) => (code === 0 ? resolve(o) : reject(new Error(`rss child exited ${code}`))));
    });
    const m = JSON.parse(out.trim().split('\n').pop()!) as { rssBefore: number; peakRss: number; seconds: number; lagP99Ms: number };
    const base = m.rssBefore;
    const peak = m.peakRss;
    const s = { secs: m.seconds, lag: m.lagP99Ms };
    await Promise.all([remove(A, src), remove(B, dst)]);
    results.rss = { bytes, baseRss: base, peakRss: peak, seconds: s.secs, lagP99Ms: s.lag, target: 256 * MiB };
    rows.push([`peak RSS copying ${bytes / MiB} MiB`, `${(peak / MiB).toFixed(0)} MiB (base ${(base / MiB).toFixed(0)} MiB, ≤ 256)`, '-', '-', '-', `${s.lag.toFixed(1)} ms`]);
  }

  await ra.close();
  await rb.close();
  for (const [c, , n] of made) await remove(c, n);
  await cleanupSet();

  const head = ['workload', 'rbd-stream (median)', 'CLI export-diff|import-diff', 'speedup', 'of ceiling', 'lag p99'];
  const all = [head, ...rows];
  const w = head.map((_, i) => Math.max(...all.map((r) => r[i].length)));
  console.log(`target write ceiling: ${fmtMiBs(ceiling)} (rbd bench, ${CHUNK / MiB} MiB × ${CONC}); reps ${REPS}, scale ${SCALE}`);
  for (const r of all) console.log(r.map((c, i) => c.padEnd(w[i])).join(' | '));
  const dir = path.join(path.dirname(fileURLToPath(import.meta.url)), 'results');
  mkdirSync(dir, { recursive: true });
  const file = path.join(dir, `replicate-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
  writeFileSync(file, `${JSON.stringify(results, null, 2)}\n`);
  console.log(`results: ${file}`);
}

let cleanupOnError: (() => Promise<void>) | undefined;
main().catch(async (e) => {
  console.error(e);
  await cleanupOnError?.();
  process.exit(1);
});
