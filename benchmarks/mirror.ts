/**
 * rbd-mirror (snapshot mode) vs replicate(): time to bring the same delta from cluster a to b.
 *
 *   npx tsx benchmarks/mirror.ts [--reps 3] [--image-mib 256] [--delta-mib 64] [--io-kib 64]
 *
 * Uses the clusters named by RBD_STREAM_CONF_A/B (their rbd-mirror daemons must run: set
 * RBD_STREAM_MIRROR_DAEMONS=1), or starts its own set with rbd-mirror daemons and stops it at the end.
 *
 * Per repetition: random writes of --delta-mib in --io-kib blocks on the mirrored primary image,
 * then a user snapshot (for replicate) and a mirror snapshot. Measured, one after the other
 * (order alternates between repetitions):
 *   mirror:    from creating the mirror snapshot until its non-primary copy on b is `complete`
 *              (polled every 20 ms via the snapshot list of the image on b);
 *   replicate: replicate({ fromSnapshot: previous, toSnapshot: this }) into a plain image on b.
 * Both move the same delta between the same clusters. Reports medians and the ratio
 * mirror / replicate; everything goes to benchmarks/results/mirror-<time>.json.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import {
  Rados,
  replicate,
  type Image,
  type Pool,
} from '../lib/index.js';
import { cephCli, rbdCli, rbdExportMd5, resolveClusters, type TestCluster } from '../test/support/clusters.js';
import { down } from '../tools/cluster/index.js';

const MiB = 1 << 20;
const { values: args } = parseArgs({
  options: {
    reps: { type: 'string', default: '3' },
    'image-mib': { type: 'string', default: '256' },
    'delta-mib': { type: 'string', default: '64' },
    'io-kib': { type: 'string', default: '64' },
  },
});
const REPS = Number(args.reps);
const IMAGE = Number(args['image-mib']) * MiB;
const DELTA = Number(args['delta-mib']) * MiB;
const IO = Number(args['io-kib']) * 1024;
const POOL = `bench-mirror-${process.pid}`;
const log = (s: string) => process.stderr.write(`${s}\n`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

async function writeDelta(img: Image, bytes: number) {
  const blocks = IMAGE / IO;
  const n = Math.ceil(bytes / IO);
  const chosen = new Set<number>();
  while (chosen.size < Math.min(n, blocks)) chosen.add(Math.floor(Math.random() * blocks));
  const list = [...chosen];
  // 16 writes in flight.
  for (let i = 0; i < list.length; i += 16) {
    await Promise.all(list.slice(i, i + 16).map((b) => img.write(randomBytes(IO), b * IO)));
  }
  await img.flush();
}

async function main() {
  let setDir: string | undefined;
  const clusters = await resolveClusters({ mirror: true, log, onDir: (d) => (setDir = d) });
  if (!clusters.started && process.env.RBD_STREAM_MIRROR_DAEMONS !== '1') {
    throw new Error('existing clusters: start an rbd-mirror daemon on each and set RBD_STREAM_MIRROR_DAEMONS=1');
  }
  const A = clusters.a;
  const B = clusters.b!;
  const cleanup: (() => Promise<unknown>)[] = [];
  try {
    for (const c of [A, B]) {
      await cephCli(c, ['osd', 'pool', 'create', POOL, '8']);
      await rbdCli(c, ['pool', 'init', POOL]);
      cleanup.push(() => cephCli(c, ['osd', 'pool', 'rm', POOL, POOL, '--yes-i-really-really-mean-it']));
    }
    const connect = (c: TestCluster) => Rados.connect({ conf: c.conf, keyring: c.keyring, user: c.user });
    const [ra, rb] = await Promise.all([connect(A), connect(B)]);
    cleanup.unshift(() => Promise.all([ra.close(), rb.close()]));
    const [pa, pb]: Pool[] = await Promise.all([ra.openPool(POOL), rb.openPool(POOL)]);
    await pa.mirror.setMode('image');
    await pb.mirror.setMode('image');
    // rx-tx: a learns b as a peer at once, so the first mirror snapshot already lists b.
    await pb.mirror.importBootstrapToken(await pa.mirror.createBootstrapToken(), { direction: 'rx-tx' });

    await pa.createImage('src', IMAGE);
    const src = await pa.openImage('src');
    cleanup.unshift(() => src.close());
    await writeDelta(src, IMAGE / 4); // base content
    await src.createSnapshot('s0');
    await src.mirror.enable('snapshot');
    let peer: Image | undefined;
    const t0 = Date.now();
    while (!peer) {
      try {
        peer = await pb.openImage('src');
      } catch {
        if (Date.now() - t0 > 120_000) throw new Error('image did not appear on b within 120 s');
        await sleep(200);
      }
    }
    cleanup.unshift(() => peer!.close());
    await src.mirror.createSnapshot();
    await src.mirror.waitForSync({ peer, timeoutMs: 180_000 });
    log('initial mirror sync done');
    // replicate's target: a full copy of s0 (not timed).
    await replicate({ source: src, toSnapshot: 's0', target: { pool: pb, name: 'repl', create: {} } });
    log('initial replicate done');

    const samples: { mirror: number; replicate: number; deltaBytes: number }[] = [];
    for (let i = 1; i <= REPS; i++) {
      await writeDelta(src, DELTA);
      await src.createSnapshot(`s${i}`);
      const runMirror = async () => {
        const t = performance.now();
        const sid = await src.mirror.createSnapshot();
        for (;;) {
          const snaps = await peer!.listSnapshots({ allNamespaces: true });
          if (snaps.some((s) => s.mirror?.primarySnapId === sid && s.mirror.complete)) break;
          if (performance.now() - t > 600_000) throw new Error('mirror sync took over 600 s');
          await sleep(20);
        }
        return (performance.now() - t) / 1000;
      };
      const runReplicate = async () => {
        const t = performance.now();
        await replicate({ source: src, fromSnapshot: `s${i - 1}`, toSnapshot: `s${i}`, target: { pool: pb, name: 'repl' } });
        return (performance.now() - t) / 1000;
      };
      let m = 0;
      let r = 0;
      if (i % 2) {
        m = await runMirror();
        r = await runReplicate();
      } else {
        r = await runReplicate();
        m = await runMirror();
      }
      samples.push({ mirror: m, replicate: r, deltaBytes: DELTA });
      log(`rep ${i}: rbd-mirror ${m.toFixed(2)} s, replicate ${r.toFixed(2)} s, ratio ${(m / r).toFixed(2)}`);
    }
    // Both copies on b must hold the bytes of the source's last snapshot.
    const [want, gotMirror, gotRepl] = await Promise.all([
      rbdExportMd5(A, `${POOL}/src@s${REPS}`),
      rbdExportMd5(B, `${POOL}/src`),
      rbdExportMd5(B, `${POOL}/repl@s${REPS}`),
    ]);
    if (gotMirror !== want || gotRepl !== want) throw new Error(`content mismatch: source ${want}, mirror ${gotMirror}, replicate ${gotRepl}`);
    log('both copies verified (md5 of rbd export)');
    const mm = median(samples.map((s) => s.mirror));
    const mr = median(samples.map((s) => s.replicate));
    const result = {
      date: new Date().toISOString(),
      reps: REPS,
      imageBytes: IMAGE,
      deltaBytes: DELTA,
      ioBytes: IO,
      samples,
      medianMirrorSeconds: mm,
      medianReplicateSeconds: mr,
      ratioMirrorOverReplicate: mm / mr,
    };
    const dir = path.join(path.dirname(fileURLToPath(import.meta.url)), 'results');
    mkdirSync(dir, { recursive: true });
    const file = path.join(dir, `mirror-${result.date.replace(/[:.]/g, '-')}.json`);
    writeFileSync(file, JSON.stringify(result, null, 2) + '\n');
    process.stdout.write(
      `delta ${(DELTA / MiB).toFixed(0)} MiB in ${IO / 1024} KiB random writes, image ${(IMAGE / MiB).toFixed(0)} MiB, ${REPS} reps\n` +
        `rbd-mirror (snapshot mode) median ${mm.toFixed(2)} s; replicate() median ${mr.toFixed(2)} s; ` +
        `ratio mirror/replicate ${(mm / mr).toFixed(2)}\nresults: ${file}\n`,
    );
  } finally {
    for (const f of cleanup) await f().catch(() => undefined);
    if (clusters.started && setDir) await down(setDir).catch(() => undefined);
  }
}

main().catch((e) => {
  log(String((e as Error).stack ?? e));
  process.exit(1);
});
