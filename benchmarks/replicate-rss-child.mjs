// Copies one snapshot in a fresh process and reports its peak RSS (VmHWM) and event-loop lag p99,
// so the number is not inflated by the benchmark's own earlier work. Used by benchmarks/replicate.ts,
// which passes cluster b's (possibly delayed) conf in RSS_B. Plain JS on the built package (dist/),
// as users run it: under tsx the same process holds ~40 MiB more (the transpiler and its cache).
import { readFileSync } from 'node:fs';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { Rados, replicate } from '../dist/index.js';

const A = JSON.parse(process.env.RSS_A);
const B = JSON.parse(process.env.RSS_B);
const status = (key) => Number(new RegExp(`${key}:\\s+(\\d+) kB`).exec(readFileSync('/proc/self/status', 'utf8'))[1]) * 1024;
const ra = await Rados.connect({ conf: A.conf, keyring: A.keyring, user: A.user });
const rb = await Rados.connect({ conf: B.conf, keyring: B.keyring, user: B.user, config: JSON.parse(process.env.RSS_B_CONFIG ?? '{}') });
const src = await (await ra.openPool(A.pool)).openImage(process.env.RSS_SRC);
const pb = await rb.openPool(B.pool);
const before = status('VmRSS');
const h = monitorEventLoopDelay({ resolution: 1 });
h.enable();
const t0 = performance.now();
const r = await replicate({
  source: src, toSnapshot: 's', target: { pool: pb, name: process.env.RSS_DST, create: {} },
  concurrency: Number(process.env.RSS_CONC), chunkSize: Number(process.env.RSS_CHUNK), inflightBytes: Number(process.env.RSS_INFLIGHT),
});
const seconds = (performance.now() - t0) / 1000;
h.disable();
await src.close();
await ra.close();
await rb.close();
process.stdout.write(`${JSON.stringify({
  rssBefore: before, peakRss: status('VmHWM'), seconds, dataSeconds: r.dataSeconds, lagP99Ms: h.percentile(99) / 1e6,
  bytesRead: r.bytesRead, bytesWritten: r.bytesWritten, bytesZeroed: r.bytesZeroed,
})}\n`);
