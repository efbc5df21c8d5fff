/**
 * Completion hand-off, measured without Node: builds benchmarks/completion-modes.cc and runs its two
 * modes (librbd completion callback + a queue to a consumer thread, as the thread-safe function does;
 * librbd's eventfd + rbd_poll_io_events, as a libuv poll handle would) alternately on one image.
 * 4 KiB random reads, QD 32. Prints medians; JSON to benchmarks/results/completion-modes.json.
 *
 * Env: BENCH_REPS (5), BENCH_OPS (60000), BENCH_QD (32). Uses RBD_STREAM_CONF_A… or starts a local pair.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Rados } from '../lib/index.js';
import { resolveClusters } from '../test/support/clusters.js';
import { down } from '../tools/cluster/index.js';

const env = (k: string, d: number) => (process.env[k] ? Number(process.env[k]) : d);
const REPS = env('BENCH_REPS', 5);
const OPS = env('BENCH_OPS', 60000);
const QD = env('BENCH_QD', 32);
const MiB = 1 << 20;
const here = path.dirname(fileURLToPath(import.meta.url));
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

interface Run { mode: string; iops: number; cpuUsPerOp: number; threadsUsPerOp: Record<string, number> }

async function main() {
  const bin = path.join(tmpdir(), `rbd-stream-completion-modes-${process.pid}`);
  execFileSync('g++', ['-O2', '-std=c++17', '-o', bin, path.join(here, 'completion-modes.cc'), '-lrbd', '-lrados', '-lpthread']);
  const clusters = await resolveClusters({ log: (s) => process.stderr.write(`[clusters] ${s}\n`) });
  const c = clusters.a;
  const name = `bench-completion-${process.pid}`;
  const r = await Rados.connect({ conf: c.conf, keyring: c.keyring, user: c.user });
  const pool = await r.openPool(c.pool);
  try {
    await pool.createImage(name, 256 * MiB);
    const img = await pool.openImage(name);
    const buf = Buffer.alloc(4 * MiB, 0xab);
    for (let off = 0; off < 256 * MiB; off += 4 * MiB) await img.write(buf, off);
    await img.close();
    if (!c.keyring) throw new Error('needs a keyring file (RBD_STREAM_KEYRING_A)');
    const runs: Run[] = [];
    for (let rep = 0; rep < REPS; rep++) {
      const order = rep % 2 === 0 ? ['callback', 'poll'] : ['poll', 'callback'];
      for (const mode of order) {
        const out = execFileSync(bin, [c.conf, c.keyring, c.pool, name, mode, String(OPS), String(QD)], { encoding: 'utf8' });
        runs.push(JSON.parse(out.trim().split('\n').pop()!) as Run);
        process.stderr.write(`rep ${rep + 1}/${REPS} ${mode}: ${JSON.stringify(runs.at(-1))}\n`);
      }
    }
    const summary: Record<string, unknown> = {};
    for (const mode of ['callback', 'poll']) {
      const rs = runs.filter((x) => x.mode === mode);
      const threads: Record<string, number> = {};
      for (const k of new Set(rs.flatMap((x) => Object.keys(x.threadsUsPerOp)))) {
        threads[k] = median(rs.map((x) => x.threadsUsPerOp[k] ?? 0));
      }
      summary[mode] = { iopsMedian: median(rs.map((x) => x.iops)), cpuUsPerOpMedian: median(rs.map((x) => x.cpuUsPerOp)), threadsUsPerOpMedian: threads };
      console.log(`${mode.padEnd(8)}: ${median(rs.map((x) => x.iops)).toFixed(0)} IOPS, ${median(rs.map((x) => x.cpuUsPerOp)).toFixed(1)} µs CPU per op (${Object.entries(threads).map(([k, v]) => `${k} ${v}`).join(', ')})`);
    }
    const dir = path.join(here, 'results');
    mkdirSync(dir, { recursive: true });
    writeFileSync(path.join(dir, 'completion-modes.json'),
      `${JSON.stringify({ date: new Date().toISOString(), ops: OPS, queueDepth: QD, reps: REPS, summary, runs }, null, 2)}\n`);
  } finally {
    await pool.removeImage(name).catch(() => undefined);
    await r.close();
    if (clusters.started && clusters.dir) await down(clusters.dir);
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
