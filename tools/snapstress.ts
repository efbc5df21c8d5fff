// Snapshot churn across PGs: images written after each snapshot (clones, snapmapper entries)
// while older snapshots are removed (snap trims). It found a memstore race that segfaults the
// OSD with more than one op thread (see tools/cluster/conf.ts); the cluster test runs it.
//   npx tsx tools/snapstress.ts <ceph.conf> [seconds]
import { randomBytes } from 'node:crypto';
import { pathToFileURL } from 'node:url';
import { Rados, type Pool } from '../lib/index.js';

export async function snapshotChurn(pool: Pool, o: { seconds: number; images?: number; prefix?: string }): Promise<number> {
  const end = Date.now() + o.seconds * 1000;
  const buf = randomBytes(64 << 10);
  let rounds = 0;
  await Promise.all(Array.from({ length: o.images ?? 8 }, async (_, w) => {
    const name = `${o.prefix ?? 'snapchurn'}-${w}`;
    await pool.createImage(name, 64 << 20, { order: 20 });
    const img = await pool.openImage(name);
    try {
      for (let k = 0; Date.now() < end; k++, rounds++) {
        // Every other MiB object, alternating: each round clones half the objects.
        await Promise.all(Array.from({ length: 32 }, (_, i) => img.write(buf, (i * 2 + (k % 2)) << 20)));
        await img.createSnapshot(`s${k}`);
        if (k >= 2) await img.removeSnapshot(`s${k - 2}`);
      }
      for (const s of await img.listSnapshots()) await img.removeSnapshot(s.name);
    } finally {
      await img.close();
    }
    await pool.removeImage(name);
  }));
  return rounds;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const conf = process.argv[2];
  if (!conf) throw new Error('usage: snapstress.ts <ceph.conf> [seconds]');
  const r = await Rados.connect({ conf, timeoutMs: 60_000 });
  try {
    const t0 = Date.now();
    const rounds = await snapshotChurn(await r.openPool('rbd'), { seconds: Number(process.argv[3] ?? 60) });
    console.log(`${rounds} rounds in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  } finally {
    await r.close();
  }
}
