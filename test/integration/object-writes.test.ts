// Object writes (native/copy/object_writes.h): an object's small writes after its first, which goes
// through librbd, are sent as one RADOS op beside librbd. The copy must stay exact, keep the target's
// earlier snapshots, its object map and fast-diff state, meet a snapshot taken mid-copy (EOLDSNAPC:
// those writes go again through librbd), and leave targets librbd alone may write (journaling) to
// librbd. Real clusters a → b, the rbd CLI as oracle.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Rados, replicate, type Image, type Pool } from '../../lib/index.js';
import type { NativeCopyResult } from '../../lib/binding/copy.js';
import { withReplicateTestHooks } from '../../lib/transfer/replicate/options.js';
import { cephCli, getClusters, rbdCli, rbdExportMd5, rbdRemoveImage, type TestCluster } from '../support/clusters.js';

const clusters = getClusters();
const A = clusters.a;
const B = clusters.b ?? clusters.a;
const MiB = 1 << 20;
const KiB = 1024;
const OBJECT = 4 * MiB;
const OBJECTS = 16;
const SIZE = OBJECTS * OBJECT;
const tag = `${process.pid}-${Date.now().toString(36)}`;

let ra: Rados;
let rb: Rados;
let pa: Pool;
let pb: Pool;
let src: Image;
const srcName = `ow-src-${tag}`;
const onB: string[] = [];

/** Objects (numbers) the CLI's whole-object diff lists as changed (from `fromSnap`, if given). */
async function changedObjects(c: TestCluster, spec: string, fromSnap?: string): Promise<number[]> {
  const args = ['diff', '--whole-object', '--format', 'json', ...(fromSnap ? ['--from-snap', fromSnap] : []), `${c.pool}/${spec}`];
  const out = JSON.parse(String(await rbdCli(c, args))) as { offset: number; length: number }[];
  const objs = new Set<number>();
  for (const e of out) for (let o = Math.floor(e.offset / OBJECT); o * OBJECT < e.offset + e.length; o++) objs.add(o);
  return [...objs].sort((x, y) => x - y);
}

async function imageFlags(c: TestCluster, name: string): Promise<string[]> {
  return (JSON.parse(String(await rbdCli(c, ['info', '--format', 'json', `${c.pool}/${name}`]))) as { flags: string[] }).flags;
}

/** `perObject` scattered writes of 4 KiB (one of them unaligned and short) into each of `objects`. */
async function scatter(img: Image, objects: number[], perObject: number, seed: number): Promise<void> {
  for (const o of objects) {
    for (let k = 0; k < perObject; k++) {
      const at = o * OBJECT + k * (OBJECT / perObject) + ((seed * 8 * KiB) % (OBJECT / perObject - 8 * KiB));
      const buf = k === 1 ? Buffer.alloc(300, 0x80 + ((o + seed) & 0x3f)) : Buffer.alloc(4 * KiB, 1 + ((o * 7 + k + seed) & 0x7f));
      await img.write(buf, k === 1 ? at + 1001 : at);
    }
  }
}

beforeAll(async () => {
  ra = await Rados.connect({ conf: A.conf, keyring: A.keyring, user: A.user });
  rb = await Rados.connect({ conf: B.conf, keyring: B.keyring, user: B.user });
  pa = await ra.openPool(A.pool);
  pb = await rb.openPool(B.pool);
  await pa.createImage(srcName, SIZE, { order: 22 });
  src = await pa.openImage(srcName);
  // s1: objects 0..7 hold data (so the target has them, and a snapshot of them, before the incremental).
  for (let o = 0; o < 8; o++) await src.write(Buffer.alloc(MiB, 0x10 + o), o * OBJECT);
  await src.createSnapshot('s1');
  // s2: 16 small writes into each of objects 0..11 (8..11 new to the target), a zeroed block in object 3.
  await scatter(src, [...Array(12).keys()], 16, 1);
  await src.write(Buffer.alloc(4 * KiB, 0), 3 * OBJECT + 8 * KiB);
  await src.createSnapshot('s2');
});

afterAll(async () => {
  await src?.close();
  for (const name of onB) await rbdRemoveImage(B, name);
  await rbdRemoveImage(A, srcName);
  await ra?.close();
  await rb?.close();
});

const copy = async (dst: string, from: string | undefined, to: string, hooks: { objectWrites?: boolean } = {}, extra: Record<string, unknown> = {}) => {
  const jobs: NativeCopyResult[] = [];
  const r = await replicate(withReplicateTestHooks(
    {
      source: src, ...(from ? { fromSnapshot: from } : {}), toSnapshot: to,
      target: from ? { pool: pb, name: dst } : { pool: pb, name: dst, create: {} }, ...extra,
    },
    { ...hooks, onJobResult: (j) => jobs.push(j) },
  ));
  return { r, jobs };
};

describe('replicate: object writes (one RADOS op per object after its first write)', () => {
  it('an incremental of scattered small writes: far fewer ops, the target exact, its earlier snapshot, object map and fast-diff intact', async () => {
    const on = `ow-on-${tag}`;
    const off = `ow-off-${tag}`;
    onB.push(on, off);
    await copy(on, undefined, 's1');
    await copy(off, undefined, 's1');
    const a = await copy(on, 's1', 's2');
    const b = await copy(off, 's1', 's2', { objectWrites: false });
    // 12 objects × 16 writes, less object 3's zeroed block (write_zeroes, through librbd): one
    // librbd write per object, the rest in object ops.
    expect(a.jobs[0].objectWrites).toBe(12 * 16 - 1 - 12);
    expect(a.jobs[0].objectWriteOps).toBeGreaterThanOrEqual(12);
    expect(a.jobs[0].objectWriteOps).toBeLessThanOrEqual(a.jobs[0].objectWrites / 4);
    expect(a.jobs[0].objectWritesRedone).toBe(0);
    expect(b.jobs[0].objectWriteOps).toBe(0);
    expect(b.jobs[0].objectWrites).toBe(0);
    expect(a.r.bytesWritten).toBe(b.r.bytesWritten);
    const srcMd5 = { s1: await rbdExportMd5(A, `${A.pool}/${srcName}@s1`), s2: await rbdExportMd5(A, `${A.pool}/${srcName}@s2`) };
    for (const dst of [on, off]) {
      expect(await rbdExportMd5(B, `${B.pool}/${dst}@s2`)).toBe(srcMd5.s2);
      // The snapshot taken before the incremental still reads as it did: the writes cloned its objects.
      expect(await rbdExportMd5(B, `${B.pool}/${dst}@s1`)).toBe(srcMd5.s1);
      // The object map marks every object written, and fast-diff sees each changed since s1.
      await rbdCli(B, ['object-map', 'check', '--no-progress', `${B.pool}/${dst}`]);
      expect(await imageFlags(B, dst)).toEqual([]);
      expect(await changedObjects(B, `${dst}@s2`, 's1')).toEqual([...Array(12).keys()]);
    }
  }, 180_000);

  it('the next incremental after one with object writes sees what changed since (fast-diff dirty state)', async () => {
    const dst = `ow-next-${tag}`;
    onB.push(dst);
    await copy(dst, undefined, 's1');
    await copy(dst, 's1', 's2');
    await scatter(src, [2, 9], 8, 2);
    await src.createSnapshot('s3');
    try {
      const n = await copy(dst, 's2', 's3');
      expect(n.jobs[0].objectWrites).toBe(2 * 7);
      expect(await rbdExportMd5(B, `${B.pool}/${dst}@s3`)).toBe(await rbdExportMd5(A, `${A.pool}/${srcName}@s3`));
      expect(await rbdExportMd5(B, `${B.pool}/${dst}@s2`)).toBe(await rbdExportMd5(A, `${A.pool}/${srcName}@s2`));
      expect(await changedObjects(B, `${dst}@s3`, 's2')).toEqual([2, 9]);
    } finally {
      await src.removeSnapshot('s3');
    }
  }, 180_000);

  /**
   * An incremental s1 → s2 slowed to ~12 s (64 KiB/s, 16 KiB chunks: the throttle's burst) during
   * which a second client of cluster b snapshots the target once the copy is under way. The copy
   * holds the target's lock, so librbd forwards the snapshot to the copy's own librbd.
   */
  const copyWithSnapshotMidway = async (dst: string, skipQuiesce: boolean) => {
    onB.push(dst);
    await copy(dst, undefined, 's1');
    const other = await Rados.connect({ conf: B.conf, keyring: B.keyring, user: B.user });
    try {
      const img = await (await other.openPool(B.pool)).openImage(dst);
      let snap: Promise<string> | undefined;
      const n = await copy(dst, 's1', 's2', {}, {
        bandwidth: 64 * KiB, chunkSize: 16 * KiB,
        onProgress: () => {
          // What the snapshot reads right after it was taken, while the copy goes on.
          snap ??= img.createSnapshot('mid', { skipQuiesce }).then(() => rbdExportMd5(B, `${B.pool}/${dst}@mid`));
        },
      });
      const midAtOnce = await snap!;
      await img.close();
      expect(await rbdExportMd5(B, `${B.pool}/${dst}@s2`)).toBe(await rbdExportMd5(A, `${A.pool}/${srcName}@s2`));
      expect(await rbdExportMd5(B, `${B.pool}/${dst}@s1`)).toBe(await rbdExportMd5(A, `${A.pool}/${srcName}@s1`));
      const snaps = JSON.parse(String(await rbdCli(B, ['snap', 'ls', '--format', 'json', `${B.pool}/${dst}`]))) as { name: string }[];
      expect(snaps.map((x) => x.name)).toEqual(['s1', 'mid', 's2']);
      await rbdCli(B, ['object-map', 'check', '--no-progress', `${B.pool}/${dst}`]);
      expect(await imageFlags(B, dst)).toEqual([]);
      return { job: n.jobs[0], midAtOnce, midAfter: await rbdExportMd5(B, `${B.pool}/${dst}@mid`) };
    } finally {
      await other.close();
    }
  };

  it('a snapshot another client takes of the target mid-copy is one point of it: object ops pause for its quiesce, and it never changes after', async () => {
    const r = await copyWithSnapshotMidway(`ow-midsnap-${tag}`, false);
    expect(r.midAfter).toBe(r.midAtOnce);
    expect(r.job.objectWriteOps).toBeGreaterThanOrEqual(12);
    // The snap context was read again after the unquiesce, before any further object op.
    expect(r.job.objectWritesRedone).toBe(0);
  }, 180_000);

  it('a snapshot taken without quiesce: object ops the OSD refuses (EOLDSNAPC) go again through librbd; the target ends exact', async () => {
    const r = await copyWithSnapshotMidway(`ow-midsnap-skip-${tag}`, true);
    expect(r.job.objectWritesRedone).toBeGreaterThanOrEqual(1);
  }, 180_000);

  it('into a target whose data objects live in a data pool', async () => {
    const dataPool = `ow-data-${process.pid}`;
    const dst = `ow-datapool-${tag}`;
    await cephCli(B, ['osd', 'pool', 'create', dataPool, '8']);
    try {
      await rbdCli(B, ['pool', 'init', dataPool]);
      await rbdCli(B, ['create', '--size', String(SIZE / MiB), '--object-size', '4M', '--data-pool', dataPool, `${B.pool}/${dst}`]);
      await copy(dst, undefined, 's1', {}, { target: { pool: pb, name: dst }, force: true });
      const n = await copy(dst, 's1', 's2');
      expect(n.jobs[0].objectWrites).toBe(12 * 16 - 1 - 12);
      expect(await rbdExportMd5(B, `${B.pool}/${dst}@s2`)).toBe(await rbdExportMd5(A, `${A.pool}/${srcName}@s2`));
      expect(await rbdExportMd5(B, `${B.pool}/${dst}@s1`)).toBe(await rbdExportMd5(A, `${A.pool}/${srcName}@s1`));
    } finally {
      await rbdRemoveImage(B, dst);
      await cephCli(B, ['osd', 'pool', 'rm', dataPool, dataPool, '--yes-i-really-really-mean-it']);
    }
  }, 180_000);

  it('not into a journaled target: librbd must journal every write', async () => {
    const dst = `ow-journal-${tag}`;
    onB.push(dst);
    await rbdCli(B, ['create', '--size', String(SIZE / MiB), '--object-size', '4M', '--image-feature', 'layering,exclusive-lock,journaling', `${B.pool}/${dst}`]);
    await copy(dst, undefined, 's1', {}, { target: { pool: pb, name: dst }, force: true });
    const n = await copy(dst, 's1', 's2');
    expect(n.jobs[0].objectWriteOps).toBe(0);
    expect(await rbdExportMd5(B, `${B.pool}/${dst}@s2`)).toBe(await rbdExportMd5(A, `${A.pool}/${srcName}@s2`));
  }, 180_000);
});
