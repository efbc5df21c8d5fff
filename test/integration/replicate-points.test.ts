// replicate() from and to snapshots no by-name call reaches (issue 13's group snapshots): `toSnapId`
// (the source's to-snapshot by id, the target snapshot named by `toSnapshot`) and the anchor
// (`diffFromSnapshot`: the diff enumerated from an older user snapshot, the base found by identity).
// Group snapshots are made with the rbd CLI; the oracle is `rbd export … | md5sum` of a user
// snapshot taken at the same point (no write between) and `rbd diff --from-snap`.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { capabilities, readIdentity, replicate, type Image, type Pool, type Rados } from '../../lib/index.js';
import { rbdCli, rbdExportMd5 } from '../support/clusters.js';
import { A, B as maybeB, Images, KiB, MiB, cliDiff, connectTo, expectCode, rnd } from '../support/helpers.js';

const B = maybeB ?? A;
const imagesA = new Images(A);
const imagesB = new Images(B);
const groups: string[] = [];
let ra: Rados;
let rb: Rados;
let pa: Pool;
let pb: Pool;

beforeAll(async () => {
  ra = await connectTo(A);
  rb = await connectTo(B);
  pa = await ra.openPool(A.pool);
  pb = await rb.openPool(B.pool);
});

afterAll(async () => {
  await ra?.close();
  await rb?.close();
  // Group snapshots go with their group; then the images.
  for (const g of groups) await rbdCli(A, ['group', 'rm', `${A.pool}/${g}`]).catch(() => {});
  await imagesA.purge();
  await imagesB.purge();
});

const diffBytes = (es: { length: number }[]) => es.reduce((n, e) => n + e.length, 0);

/** The id of the one group-namespace snapshot of `img` not in `before` (the group snapshot just made). */
async function groupSnapId(img: Image, before: Set<number>): Promise<number> {
  const made = (await img.listSnapshots({ allNamespaces: true })).filter((s) => s.namespace === 'group' && !before.has(s.id));
  expect(made).toHaveLength(1);
  return made[0].id;
}

describe('replicate toSnapId / diffFromSnapshot (group snapshots as points)', () => {
  let img: Image;
  let name: string;
  let group: string;
  let spec: string;
  // Member snapshot ids of group snapshots g1, g2 (the oracle: user snapshots u1, u2 at the same points).
  let g1: number;
  let g2: number;
  let d1Bytes: number;

  beforeAll(async () => {
    name = await imagesA.create(pa, 'rp', 24 * MiB);
    spec = `${A.pool}/${name}`;
    group = `rpg-${process.pid}-${Date.now().toString(36)}`;
    groups.push(group);
    await rbdCli(A, ['group', 'create', `${A.pool}/${group}`]);
    await rbdCli(A, ['group', 'image', 'add', `${A.pool}/${group}`, spec]);
    img = await pa.openImage(name);
    await img.write(rnd(6 * MiB), 0);
    await img.write(rnd(64 * KiB), 20 * MiB);
    await img.flush();
    await img.createSnapshot('a1');
    // Written between the anchor and the group snapshot: in diff(a1 → g2), not in diff(g1 → g2).
    await img.write(rnd(128 * KiB), 8 * MiB);
    await img.flush();
    d1Bytes = 128 * KiB;
    let seen = new Set((await img.listSnapshots({ allNamespaces: true })).map((s) => s.id));
    await rbdCli(A, ['group', 'snap', 'create', `${A.pool}/${group}@g1`]);
    g1 = await groupSnapId(img, seen);
    await img.createSnapshot('u1');
    await img.write(rnd(16 * KiB), 100 * KiB);
    await img.writeZeroes(2 * MiB, 64 * KiB);
    await img.discard(20 * MiB, 64 * KiB);
    await img.flush();
    await img.createSnapshot('a2');
    await img.write(rnd(1 * MiB), 12 * MiB);
    await img.flush();
    seen = new Set((await img.listSnapshots({ allNamespaces: true })).map((s) => s.id));
    await rbdCli(A, ['group', 'snap', 'create', `${A.pool}/${group}@g2`]);
    g2 = await groupSnapId(img, seen);
    await img.createSnapshot('u2');
  });

  afterAll(async () => {
    await img?.close();
  });

  it('toSnapId copies a group snapshot in full; toSnapshot names the target snapshot, its identity is the group snapshot', async () => {
    const t = imagesB.name('rp-full');
    const r = await replicate({ source: img, toSnapId: g1, toSnapshot: 'sync-1', target: { pool: pb, name: t, create: {} }, verify: true });
    expect(r.base).toBeUndefined();
    expect(r.snapshot.snapId).toBe(g1);
    expect(await rbdExportMd5(B, `${B.pool}/${t}@sync-1`)).toBe(await rbdExportMd5(A, `${spec}@u1`));
    const target = await pb.openImage(t);
    try {
      const rec = await readIdentity(target, 'sync-1');
      expect(rec?.snapId).toBe(g1);
      expect(rec?.imageId).toBe((await img.stat()).id);
    } finally {
      await target.close();
    }
  });

  it('the anchor: fromSnapId (group snapshot) + diffFromSnapshot copies g1 → g2 exactly, writing what changed since the anchor', async () => {
    const t = imagesB.name('rp-anchor');
    await replicate({ source: img, toSnapId: g1, toSnapshot: 'sync-1', target: { pool: pb, name: t, create: {} } });
    const r = await replicate({
      source: img, fromSnapId: g1, diffFromSnapshot: 'a1', toSnapId: g2, toSnapshot: 'sync-2', target: { pool: pb, name: t }, verify: true,
    });
    expect(r.base).toBe('sync-1');
    expect(await rbdExportMd5(B, `${B.pool}/${t}@sync-2`)).toBe(await rbdExportMd5(A, `${spec}@u2`));
    // Exactly the extents of diff(a1 → g2), written or zeroed: a superset of diff(g1 → g2) by the
    // block written between a1 and g1.
    const fromAnchor = await cliDiff(A, `${spec}@u2`, { fromSnap: 'a1' });
    const fromBase = await cliDiff(A, `${spec}@u2`, { fromSnap: 'u1' });
    expect(r.bytesWritten + r.bytesZeroed).toBe(diffBytes(fromAnchor));
    expect(diffBytes(fromAnchor) - diffBytes(fromBase)).toBe(d1Bytes);
  });

  it('fromSnapshot (by name) + an older anchor works as well', async () => {
    const t = imagesB.name('rp-name');
    await replicate({ source: img, toSnapshot: 'u1', target: { pool: pb, name: t, create: {} } });
    const r = await replicate({ source: img, fromSnapshot: 'u1', diffFromSnapshot: 'a1', toSnapshot: 'u2', target: { pool: pb, name: t } });
    expect(r.base).toBe('u1');
    expect(await rbdExportMd5(B, `${B.pool}/${t}@u2`)).toBe(await rbdExportMd5(A, `${spec}@u2`));
  });

  it('refuses an anchor newer than the base (ERR_ANCHOR_AFTER_BASE) and a missing one (ENOENT), before touching the target', async () => {
    const t = imagesB.name('rp-refuse');
    await replicate({ source: img, toSnapId: g1, toSnapshot: 'sync-1', target: { pool: pb, name: t, create: {} } });
    const e = await expectCode(replicate({
      source: img, fromSnapId: g1, diffFromSnapshot: 'a2', toSnapId: g2, toSnapshot: 'sync-2', target: { pool: pb, name: t },
    }), 'ERR_ANCHOR_AFTER_BASE');
    expect(e.snapshot).toBe('a2');
    await expectCode(replicate({
      source: img, fromSnapId: g1, diffFromSnapshot: 'no-such', toSnapId: g2, toSnapshot: 'sync-2', target: { pool: pb, name: t },
    }), 'ENOENT');
    expect(JSON.parse(await rbdCli(B, ['snap', 'ls', '--format', 'json', `${B.pool}/${t}`])).map((s: { name: string }) => s.name)).toEqual(['sync-1']);
  });

  it('a toSnapId the image does not have is ENOENT', async () => {
    await expectCode(replicate({ source: img, toSnapId: 999_999, toSnapshot: 'x', target: { pool: pb, name: imagesB.name('rp-none'), create: {} } }), 'ENOENT');
  });

  it('bad combinations are TypeError/RangeError before any cluster call', async () => {
    const target = { pool: pb, name: 'never-created' };
    await expect(replicate({ source: img, diffFromSnapshot: 'a1', toSnapshot: 'u2', target })).rejects.toThrow(TypeError);
    await expect(replicate({ source: img, toSnapId: -1, toSnapshot: 'u2', target })).rejects.toThrow(RangeError);
    await expect(replicate({ source: img, toSnapId: 'g2' as unknown as number, toSnapshot: 'u2', target })).rejects.toThrow(TypeError);
    await expect(replicate({ source: img, fromSnapId: g1, toSnapId: g1, toSnapshot: 'u2', target })).rejects.toThrow(RangeError);
    await expect(replicate({ source: img, fromSnapshot: 'u1', diffFromSnapshot: 'a/b', toSnapshot: 'u2', target })).rejects.toThrow(TypeError);
  });

  // By id (no anchor) needs rbd_diff_iterate3: asserted per the running librbd.
  if (capabilities().diffIterate3) {
    it('by id: fromSnapId + toSnapId (group snapshots, diff_iterate3) copies g1 → g2 exactly', async () => {
      const t = imagesB.name('rp-byid');
      await replicate({ source: img, toSnapId: g1, toSnapshot: 'sync-1', target: { pool: pb, name: t, create: {} } });
      const r = await replicate({ source: img, fromSnapId: g1, toSnapId: g2, toSnapshot: 'sync-2', target: { pool: pb, name: t }, verify: true });
      expect(r.base).toBe('sync-1');
      expect(await rbdExportMd5(B, `${B.pool}/${t}@sync-2`)).toBe(await rbdExportMd5(A, `${spec}@u2`));
      expect(r.bytesWritten + r.bytesZeroed).toBe(diffBytes(await cliDiff(A, `${spec}@u2`, { fromSnap: 'u1' })));
    });
  } else {
    it('by id without an anchor is ENOTSUP on this librbd (no rbd_diff_iterate3)', async () => {
      await expectCode(replicate({ source: img, fromSnapId: g1, toSnapId: g2, toSnapshot: 'sync-2', target: { pool: pb, name: 'never-created' } }), 'ENOTSUP');
    });
  }
});
