// Newer librbd found at run time (issue 12): capabilities(), and diffs from a snapshot *id* through
// rbd_diff_iterate3 — from a mirror snapshot, which no by-name call reaches. Asserted per release
// from the running Ceph version: where librbd has diff_iterate3 the results are checked against
// the rbd CLI; where it lacks it every by-id entry point rejects with ENOTSUP. Nothing is skipped.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { native } from '../../lib/binding/index.js';
import {
  capabilities, inspectDiff, librbdVersion, replicate, syncImage, type Extent, type Image, type Pool, type Rados,
} from '../../lib/index.js';
import { cephCli, rbdCli, rbdExportMd5 } from '../support/clusters.js';
import { A, Images, KiB, MiB, cliDiff, connectTo, expectCode, rnd } from '../support/helpers.js';

const POOL = `rbdstream-caps-${process.pid}`;

/** Does this Ceph release have rbd_diff_iterate3? Reef from 18.2.5, Squid from 19.2.3, all later. */
function expectDiffIterate3(version: string): boolean {
  const [maj, min, patch] = version.split('.').map((x) => Number.parseInt(x, 10));
  if (maj >= 20) return true;
  if (maj === 19) return min > 2 || (min === 2 && patch >= 3);
  if (maj === 18) return min > 2 || (min === 2 && patch >= 5);
  return false;
}

async function collect(img: Image, opts: Parameters<Image['diff']>[0]): Promise<Extent[]> {
  const out: Extent[] = [];
  for await (const batch of img.diff(opts)) out.push(...batch);
  return out;
}

async function streamBytes(s: NodeJS.ReadableStream): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of s) parts.push(c as Buffer);
  return Buffer.concat(parts);
}

let rados: Rados;
let pool: Pool;
const images = new Images({ ...A, pool: POOL });

beforeAll(async () => {
  await cephCli(A, ['osd', 'pool', 'create', POOL, '8']);
  await rbdCli(A, ['pool', 'init', POOL]);
  rados = await connectTo(A);
  pool = await rados.openPool(POOL);
  // Snapshot-mode mirroring needs the pool in 'image' mode, and librbd creates a primary mirror
  // snapshot only for some peer (EINVAL without one): a peer that is never reached will do.
  await pool.mirror.setMode('image');
  await pool.mirror.addPeer('client.nobody@caps-unreached', { direction: 'rx-tx' });
});

afterAll(async () => {
  await images.purge().catch(() => {});
  await rados?.close();
  await cephCli(A, ['osd', 'pool', 'rm', POOL, POOL, '--yes-i-really-really-mean-it']).catch(() => {});
});

describe('capabilities()', () => {
  it('reports the running librbd, and diffIterate3 as its Ceph release implies', async () => {
    const c = capabilities();
    expect(c.librbdVersion).toBe(librbdVersion);
    expect(c.cephVersion).toMatch(/^\d+\.\d+\.\d+/);
    // The same release as the rbd CLI the suite uses as oracle (the host's, or the chroot's).
    const cli = await rbdCli(A, ['--version']);
    expect(cli).toContain(`ceph version ${c.cephVersion}`);
    // Asserted both ways: a Reef 18.2.7 run must see true, a Pacific run false.
    expect(c.diffIterate3).toBe(expectDiffIterate3(c.cephVersion!));
    expect(native.getCapabilities().diffIterate3).toBe(c.diffIterate3);
    expect(capabilities()).toBe(c);
    expect(Object.isFrozen(c)).toBe(true);
  });
});

describe('diff from a snapshot id', () => {
  const has = expectDiffIterate3(capabilities().cephVersion ?? '0.0.0');
  let img: Image;
  let name: string;
  let spec: string;
  let mirrorSnapId: number;
  let mirrorSnapName: string;
  let userSnapId: number;

  beforeAll(async () => {
    name = await images.create(pool, 'caps', 32 * MiB);
    spec = `${POOL}/${name}`;
    img = await pool.openImage(name);
    await img.write(rnd(4 * MiB), 0);
    await img.write(rnd(64 * KiB), 9 * MiB);
    await img.mirror.enable('snapshot');
    mirrorSnapId = await img.mirror.createSnapshot();
    // A user snapshot of the same data: the CLI's oracle for the mirror snapshot (it cannot name one).
    await img.createSnapshot('u');
    const snaps = await img.listSnapshots({ allNamespaces: true });
    const ms = snaps.find((s) => s.id === mirrorSnapId)!;
    expect(ms.namespace).toBe('mirror');
    mirrorSnapName = ms.name;
    userSnapId = snaps.find((s) => s.name === 'u')!.id;
    await img.write(rnd(8 * KiB), 100 * KiB);
    await img.write(rnd(1 * MiB), 12 * MiB);
    await img.discard(9 * MiB, 64 * KiB);
    await img.writeZeroes(2 * MiB, 4 * KiB);
    await img.flush();
    await img.createSnapshot('s2');
  });

  afterAll(async () => {
    await img?.close();
  });

  it('by-name lookup cannot reach the mirror snapshot', async () => {
    expect(mirrorSnapName.startsWith('.mirror.primary.')).toBe(true);
    expect(await img.getSnapshot(mirrorSnapName)).toBeUndefined();
  });

  if (has) {
    it('image.diff({ fromSnapId }) from the mirror snapshot equals rbd diff --from-snap of the same point', async () => {
      for (const wholeObject of [false, true]) {
        const expected = await cliDiff(A, spec, { fromSnap: 'u', wholeObject });
        expect(expected.length).toBeGreaterThan(0);
        expect(await collect(img, { fromSnapId: mirrorSnapId, wholeObject })).toEqual(expected);
        expect(await collect(img, { fromSnapId: BigInt(mirrorSnapId), wholeObject })).toEqual(expected);
        expect(await collect(img, { fromSnapId: userSnapId, wholeObject })).toEqual(expected);
      }
    });

    it('exportDiff({ fromSnapId }) equals rbd export-diff byte for byte; a mirror base names itself in the f record', async () => {
      const ours = await streamBytes(img.exportDiff({ fromSnapId: userSnapId, snapshot: 's2' }));
      const cli = await rbdCli(A, ['--no-progress', 'export-diff', '--from-snap', 'u', `${spec}@s2`, '-'], { buffer: true });
      expect(ours.equals(cli)).toBe(true);
      const fromMirror = await streamBytes(img.exportDiff({ fromSnapId: mirrorSnapId, snapshot: 's2' }));
      const sum = await inspectDiff([fromMirror]);
      expect(sum.fromSnapshot).toBe(mirrorSnapName);
      expect(sum.toSnapshot).toBe('s2');
      // Same data records as the user-snapshot base: only the f record's name differs.
      expect(fromMirror.length - ours.length).toBe(Buffer.byteLength(mirrorSnapName) - 1);
    });

    it('replicate({ fromSnapId }) finds the target base by recorded identity, also after the source snapshot was renamed', async () => {
      const t = images.name('caps-t');
      await replicate({ source: img, toSnapshot: 'u', target: { pool, name: t, create: {} } });
      await rbdCli(A, ['snap', 'rename', `${spec}@u`, `${spec}@u-renamed`]);
      try {
        // By name the base is gone on the source; by id it is still the same snapshot.
        await expectCode(replicate({ source: img, fromSnapshot: 'u', toSnapshot: 's2', target: { pool, name: t } }), 'ENOENT');
        const r = await replicate({ source: img, fromSnapId: userSnapId, toSnapshot: 's2', target: { pool, name: t }, verify: true });
        expect(r.base).toBe('u');
        expect(await rbdExportMd5(A, `${POOL}/${t}@s2`)).toBe(await rbdExportMd5(A, `${spec}@s2`));
        // A mirror snapshot was never copied to this target: no base to find.
        await expectCode(replicate({ source: img, fromSnapId: mirrorSnapId, toSnapshot: 's2', target: { pool, name: t } }), 'ENOENT');
      } finally {
        await rbdCli(A, ['snap', 'rename', `${spec}@u-renamed`, `${spec}@u`]);
      }
    });

    it('syncImage({ fromSnapId }) bases its round on that snapshot', async () => {
      const t = images.name('caps-sync');
      const r1 = await syncImage({ source: img, target: { pool, name: t } });
      expect(r1.mode).toBe('full');
      await img.write(rnd(16 * KiB), 20 * MiB);
      await img.flush();
      const baseId = (await img.getSnapshot(r1.snapshot))!.id;
      const r2 = await syncImage({ source: img, target: { pool, name: t }, fromSnapId: baseId, verify: true });
      expect(r2.mode).toBe('incremental');
      expect(r2.base).toBe(r1.snapshot);
      expect(await rbdExportMd5(A, `${POOL}/${t}@${r2.snapshot}`)).toBe(await rbdExportMd5(A, `${spec}@${r2.snapshot}`));
    });
  } else {
    it('every by-id entry point rejects with ENOTSUP naming the version and the release needed', async () => {
      const e = await expectCode(collect(img, { fromSnapId: mirrorSnapId }), 'ENOTSUP');
      expect(e.errno).toBe(-95);
      expect(e.message).toContain(librbdVersion);
      expect(e.message).toContain(capabilities().cephVersion!);
      expect(e.message).toMatch(/18\.2\.5.*19\.2\.3/);
      expect(e.image).toBe(name);
      expect(e.pool).toBe(POOL);
      await expectCode(streamBytes(img.exportDiff({ fromSnapId: mirrorSnapId, snapshot: 's2' })), 'ENOTSUP');
      const t = images.name('caps-t');
      await expectCode(replicate({ source: img, fromSnapId: userSnapId, toSnapshot: 's2', target: { pool, name: t, create: {} } }), 'ENOTSUP');
      const before = (await img.listSnapshots()).length;
      await expectCode(syncImage({ source: img, target: { pool, name: t }, fromSnapId: userSnapId }), 'ENOTSUP');
      // Refused before the source was snapshotted, and nothing was created on the target side.
      expect((await img.listSnapshots()).length).toBe(before);
      expect(await pool.listImages()).not.toContain(t);
    });

    it('the addon itself refuses a by-id diff without diff_iterate3 (EOPNOTSUPP from librbd\'s side)', async () => {
      const { kHandle } = await import('../../lib/core/internal.js');
      const handle = (img as unknown as Record<symbol, unknown>)[kHandle] as Parameters<typeof native.getDiffExtents>[0];
      await expectCode(native.getDiffExtents(handle, BigInt(mirrorSnapId), 0, MiB, false, true), 'EOPNOTSUPP');
    });
  }

  it('bad fromSnapId combinations throw before any native call', () => {
    expect(() => img.diff({ fromSnapId: 1, fromSnapshot: 'u' })).toThrow(TypeError);
    expect(() => img.diff({ fromSnapId: -1 })).toThrow(RangeError);
    expect(() => img.diff({ fromSnapId: 1.5 })).toThrow(TypeError);
    expect(() => img.diff({ fromSnapId: '3' as never })).toThrow(TypeError);
    expect(() => img.diff({ fromSnapId: 1n << 64n })).toThrow(RangeError);
    expect(() => img.exportDiff({ fromSnapId: 1, fromSnapshot: 'u', snapshot: 's2' })).toThrow(TypeError);
    return Promise.all([
      expect(replicate({ source: img, fromSnapId: 1, fromSnapshot: 'u', toSnapshot: 's2', target: { pool, name: 'x' } })).rejects.toThrow(TypeError),
      expect(syncImage({ source: img, target: { pool, name: 'x' }, fromSnapId: Number.MAX_SAFE_INTEGER + 2 })).rejects.toThrow(RangeError),
    ]);
  });
});
