/**
 * I/O benchmark: rbd-stream from Node vs `rbd bench`, same parameters, same image, one run.
 *
 *  - 4 KiB random reads at queue depth QD (IOPS)
 *  - 4 MiB sequential writes at queue depth QD (MB/s)
 *
 * Repetitions are interleaved (node, rbd, node, rbd, …) so drift in the shared machine's load hits
 * both sides alike; medians are reported with the ratio node / rbd (target ≥ 0.8).
 * Uses the clusters named by RBD_STREAM_CONF_A… or starts (and stops) a local pair.
 *
 * Env: BENCH_REPS (5), BENCH_QD (32), BENCH_IMAGE_MB (256), BENCH_READ_MB (128), BENCH_WRITE_MB (1024),
 * BENCH_OSD_OP_THREADS (4; for clusters started here).
 */
import { spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Rados, librbdVersion, type Image } from '../lib/index.js';
import { clusterArgs, resolveClusters, type TestCluster } from '../test/support/clusters.js';
import { down } from '../tools/cluster/index.js';

const env = (k: string, d: number) => (process.env[k] ? Number(process.env[k]) : d);
const REPS = env('BENCH_REPS', 5);
const QD = env('BENCH_QD', 32);
const MiB = 1024 * 1024;
const IMAGE = env('BENCH_IMAGE_MB', 256) * MiB;
const READ_TOTAL = env('BENCH_READ_MB', 128) * MiB;
const WRITE_TOTAL = env('BENCH_WRITE_MB', 1024) * MiB;
const OSD_OP_THREADS = env('BENCH_OSD_OP_THREADS', 4);
const R_SIZE = 4096;
const W_SIZE = 4 * MiB;

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

/** Runs `rbd bench`; returns ops/sec (parsed from its summary line). */
function rbdBench(c: TestCluster, spec: string, args: string[]): Promise<number> {
  return new Promise((resolve, reject) => {
    const e = { ...process.env };
    delete e.CEPH_ARGS;
    const child = spawn('rbd', [...clusterArgs(c), 'bench', ...args, spec], { env: e, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    child.on('close', (code) => {
      const m = /elapsed:\s*\S+\s+ops:\s*(\d+)\s+ops\/sec:\s*([\d.]+)/.exec(out);
      if (code !== 0 || !m) return reject(new Error(`rbd bench failed (${code}): ${err || out}`));
      resolve(Number(m[2]));
    });
  });
}

/** QD workers issuing `count` ops in total; returns ops/sec measured from first submit to last completion. */
async function runQd(count: number, op: (i: number) => Promise<unknown>, after?: () => Promise<void>): Promise<number> {
  let next = 0;
  const t0 = process.hrtime.bigint();
  const worker = async () => {
    while (next < count) await op(next++);
  };
  await Promise.all(Array.from({ length: QD }, worker));
  if (after) await after();
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  return count / secs;
}

async function nodeRead(img: Image): Promise<number> {
  const blocks = IMAGE / R_SIZE;
  const count = READ_TOTAL / R_SIZE;
  // Offsets drawn before timing (rbd bench draws them in its loop too, cheaply).
  const offs = Float64Array.from({ length: count }, () => Math.floor(Math.random() * blocks) * R_SIZE);
  return runQd(count, (i) => img.read(offs[i], R_SIZE));
}

async function nodeWrite(img: Image, buf: Buffer): Promise<number> {
  const count = WRITE_TOTAL / W_SIZE;
  const per = IMAGE / W_SIZE;
  return runQd(count, (i) => img.write(buf, (i % per) * W_SIZE), () => img.flush());
}

async function main() {
  // Clusters started here get 4 OSD op threads: this workload trims no snapshots, so the memstore
  // race that makes 1 the default cannot occur, and a 1-thread OSD leaves the client alone on a
  // core, which no real deployment does (BENCH_OSD_OP_THREADS=1 measures that case).
  const clusters = await resolveClusters({ osdOpThreads: OSD_OP_THREADS, log: (s) => process.stderr.write(`[clusters] ${s}\n`) });
  const c = clusters.a;
  const name = `bench-io-${process.pid}`;
  const spec = `${c.pool}/${name}`;
  const r = await Rados.connect({ conf: c.conf, keyring: c.keyring, user: c.user });
  const pool = await r.openPool(c.pool);
  const results: Record<string, unknown> = {};
  try {
    await pool.createImage(name, IMAGE);
    // Fill the image so reads hit real objects (not the "object does not exist" fast path).
    const fill = await pool.openImage(name);
    const buf = Buffer.alloc(W_SIZE, 0xab);
    await Promise.all(Array.from({ length: IMAGE / W_SIZE }, (_, i) => fill.write(buf, i * W_SIZE)));
    await fill.close();

    const readArgs = ['--io-type', 'read', '--io-size', '4K', '--io-threads', String(QD), '--io-pattern', 'rand', '--io-total', `${READ_TOTAL / MiB}M`];
    const writeArgs = ['--io-type', 'write', '--io-size', '4M', '--io-threads', String(QD), '--io-pattern', 'seq', '--io-total', `${WRITE_TOTAL / MiB}M`];
    const nr: number[] = [], rr: number[] = [], nw: number[] = [], rw: number[] = [];
    // Warm-up (not counted).
    {
      const img = await pool.openImage(name);
      await nodeRead(img);
      await img.close();
      await rbdBench(c, spec, readArgs);
    }
    for (let rep = 0; rep < REPS; rep++) {
      // Alternate which side goes first.
      const order = rep % 2 === 0 ? ['node', 'rbd'] : ['rbd', 'node'];
      for (const who of order) {
        if (who === 'node') {
          // Read-only for reads (no exclusive lock, as rbd bench read doesn't write either).
          const ro = await pool.openImage(name, { readOnly: true });
          nr.push(await nodeRead(ro));
          await ro.close();
        } else rr.push(await rbdBench(c, spec, readArgs));
      }
      for (const who of order) {
        if (who === 'node') {
          const img = await pool.openImage(name);
          nw.push((await nodeWrite(img, buf)) * W_SIZE / 1e6);
          await img.close();
        } else rw.push((await rbdBench(c, spec, writeArgs)) * W_SIZE / 1e6);
      }
      process.stderr.write(
        `rep ${rep + 1}/${REPS}: read node ${nr.at(-1)!.toFixed(0)} rbd ${rr.at(-1)!.toFixed(0)} IOPS; ` +
          `write node ${nw.at(-1)!.toFixed(1)} rbd ${rw.at(-1)!.toFixed(1)} MB/s\n`,
      );
    }
    const read = { node: median(nr), rbd: median(rr), paired: median(nr.map((x, i) => x / rr[i])) };
    const write = { node: median(nw), rbd: median(rw), paired: median(nw.map((x, i) => x / rw[i])) };
    Object.assign(results, {
      date: new Date().toISOString(),
      librbd: librbdVersion,
      node: process.version,
      params: { queueDepth: QD, reps: REPS, imageBytes: IMAGE, readTotalBytes: READ_TOTAL, writeTotalBytes: WRITE_TOTAL, osdOpThreads: process.env.RBD_STREAM_CONF_A ? null : OSD_OP_THREADS },
      randRead4k: {
        unit: 'IOPS', nodeMedian: Math.round(read.node), rbdBenchMedian: Math.round(read.rbd),
        ratio: +(read.node / read.rbd).toFixed(3), pairedRatioMedian: +read.paired.toFixed(3),
        node: nr.map(Math.round), rbdBench: rr.map(Math.round),
        rbdBenchArgs: readArgs.join(' '),
      },
      seqWrite4m: {
        unit: 'MB/s', nodeMedian: +write.node.toFixed(1), rbdBenchMedian: +write.rbd.toFixed(1),
        ratio: +(write.node / write.rbd).toFixed(3), pairedRatioMedian: +write.paired.toFixed(3),
        node: nw.map((x) => +x.toFixed(1)), rbdBench: rw.map((x) => +x.toFixed(1)),
        rbdBenchArgs: writeArgs.join(' '),
      },
      target: 0.8,
    });
    console.log(`4 KiB random read, QD ${QD}: node ${read.node.toFixed(0)} IOPS, rbd bench ${read.rbd.toFixed(0)} IOPS, ratio ${(read.node / read.rbd).toFixed(2)} (median of per-repetition ratios ${read.paired.toFixed(2)})`);
    console.log(`4 MiB sequential write, QD ${QD}: node ${write.node.toFixed(1)} MB/s, rbd bench ${write.rbd.toFixed(1)} MB/s, ratio ${(write.node / write.rbd).toFixed(2)} (median of per-repetition ratios ${write.paired.toFixed(2)})`);
    const dir = path.join(path.dirname(fileURLToPath(import.meta.url)), 'results');
    mkdirSync(dir, { recursive: true });
    writeFileSync(path.join(dir, 'io.json'), JSON.stringify(results, null, 2) + '\n');
    console.log(`wrote ${path.join(dir, 'io.json')}`);
  } finally {
    await pool.removeImage(name).catch((e) => console.error(`cleanup: ${e.message}`));
    await r.close();
    if (clusters.started && clusters.dir) await down(clusters.dir);
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
