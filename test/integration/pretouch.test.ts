// Pre-touch (native/copy/engine.cc): a full copy into a target it created copies each object's first
// data block ahead of that object's chunks, so librbd's object-map mark for the object is made before
// the chunks arrive. The copy must stay exact and as sparse as without it. Real clusters a → b, the
// rbd CLI as oracle (`rbd export | md5`, `rbd diff --whole-object --format json`).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Rados, replicate, type Image, type Pool } from '../../lib/index.js';
import type { NativeCopyResult } from '../../lib/binding/copy.js';
import { withReplicateTestHooks } from '../../lib/transfer/replicate/options.js';
import { getClusters, rbdCli, rbdExportMd5, rbdRemoveImage, type TestCluster } from '../support/clusters.js';
import { expectCode } from '../support/helpers.js';

const clusters = getClusters();
const A = clusters.a;
const B = clusters.b ?? clusters.a;
const MiB = 1 << 20;
const KiB = 1024;
const OBJECT = 4 * MiB;
const SIZE = 16 * OBJECT;

let ra: Rados;
let rb: Rados;
let pa: Pool;
let pb: Pool;
let src: Image;
const srcName = `pretouch-src-${process.pid}-${Date.now().toString(36)}`;
const onB: string[] = [];

const fill = (len: number, byte: number) => Buffer.alloc(len, byte);

/** Objects (numbers) that exist in spec, by the CLI's whole-object diff. */
async function objectsOf(c: TestCluster, spec: string): Promise<number[]> {
  const out = JSON.parse(String(await rbdCli(c, ['diff', '--whole-object', '--format', 'json', `${c.pool}/${spec}`]))) as
    { offset: number; length: number; exists: string | boolean }[];
  const objs = new Set<number>();
  for (const e of out) {
    if (e.exists !== true && e.exists !== 'true') continue;
    for (let o = Math.floor(e.offset / OBJECT); o * OBJECT < e.offset + e.length; o++) objs.add(o);
  }
  return [...objs].sort((x, y) => x - y);
}

beforeAll(async () => {
  ra = await Rados.connect({ conf: A.conf, keyring: A.keyring, user: A.user });
  rb = await Rados.connect({ conf: B.conf, keyring: B.keyring, user: B.user });
  pa = await ra.openPool(A.pool);
  pb = await rb.openPool(B.pool);
  await pa.createImage(srcName, SIZE, { order: 22 });
  src = await pa.openImage(srcName);
  // Every kind of object start the pre-touch meets (objects 0..15):
  await src.write(fill(OBJECT, 0x11), 0 * OBJECT); // 0: data from its first byte, whole object
  await src.write(fill(64 * KiB + 100, 0x22), 1 * OBJECT); // 1: data from its start, unaligned end
  await src.write(fill(8 * KiB, 0), 2 * OBJECT); // 2: a zero block first, then data
  await src.write(fill(4 * KiB, 0x33), 2 * OBJECT + 8 * KiB);
  await src.write(fill(8 * KiB, 0), 3 * OBJECT + 4 * KiB); // 3: only zeros written: allocated on the source
  await src.write(fill(2 * MiB, 0x44), 5 * OBJECT - MiB); // 4→5: one extent across an object boundary
  await src.write(fill(300, 0x55), 7 * OBJECT + 4000); // 7: a short extent across a 4 KiB block boundary
  for (let o = 9; o < 16; o++) await src.write(fill(MiB, 0x60 + o), o * OBJECT); // 9..15: data from their start
  await src.write(fill(5000, 0x77), 10 * OBJECT + 2 * MiB + 512); // and unaligned data mid-object
  // objects 6 and 8: never written
  await src.createSnapshot('s');
});

afterAll(async () => {
  await src?.close();
  for (const name of onB) await rbdRemoveImage(B, name);
  await rbdRemoveImage(A, srcName);
  await ra?.close();
  await rb?.close();
});

describe('replicate: pre-touch of a created target', () => {
  // A small window (1 MiB chunks, 4 MiB in flight) keeps the chunks behind: objects further on are
  // pre-touched. The source objects that carry data: all but 6 and 8; the target must not get object 3
  // (zeros only), as without pre-touch.
  const expectedTargetObjects = [0, 1, 2, 4, 5, 7, 9, 10, 11, 12, 13, 14, 15];
  const copy = async (pretouch: boolean, extra: Record<string, unknown> = {}) => {
    const dst = `pretouch-${pretouch ? 'on' : 'off'}-${process.pid}-${Date.now().toString(36)}`;
    onB.push(dst);
    const jobs: NativeCopyResult[] = [];
    const r = await replicate(withReplicateTestHooks(
      { source: src, toSnapshot: 's', target: { pool: pb, name: dst, create: {} }, chunkSize: MiB, inflightBytes: 4 * MiB, ...extra },
      { pretouch, onJobResult: (j) => jobs.push(j) },
    ));
    return { dst, r, jobs };
  };

  it('copies each later object\'s first non-zero block ahead; the copy is exact and as sparse as without it', async () => {
    const srcMd5 = await rbdExportMd5(A, `${A.pool}/${srcName}@s`);
    expect(await objectsOf(A, `${srcName}@s`)).toEqual([0, 1, 2, 3, 4, 5, 7, 9, 10, 11, 12, 13, 14, 15]);
    const on = await copy(true);
    const off = await copy(false);
    // At most once per object with data, never object 0 (the chunks start there) nor 2 and 3 (a zero
    // block first): 1, 5, 7, 9..15, and 4 where its diff extent starts with its data (BlueStore; memstore
    // reports whole objects). An object the chunks reach first marks itself (which ones depends on
    // how the chunks' completions batch up), so the count has a floor well below that.
    expect(on.jobs[0].pretouched).toBeGreaterThanOrEqual(6);
    expect(on.jobs[0].pretouched).toBeLessThanOrEqual(11);
    expect(off.jobs[0].pretouched).toBe(0);
    // Pre-touched bytes are written again by their chunks: counted once.
    expect(on.r.bytesWritten).toBe(off.r.bytesWritten);
    expect(on.r.bytesRead).toBe(off.r.bytesRead);
    for (const x of [on, off]) {
      expect(await rbdExportMd5(B, `${B.pool}/${x.dst}@s`)).toBe(srcMd5);
      expect(await objectsOf(B, `${x.dst}@s`)).toEqual(expectedTargetObjects);
    }
  });

  it('an aborted copy resumes to an exact target (pre-touched blocks past the checkpoint are the source\'s)', async () => {
    const dst = `pretouch-abort-${process.pid}-${Date.now().toString(36)}`;
    onB.push(dst);
    const ac = new AbortController();
    const jobs: NativeCopyResult[] = [];
    await expectCode(replicate(withReplicateTestHooks(
      {
        source: src, toSnapshot: 's', target: { pool: pb, name: dst, create: {} }, signal: ac.signal,
        chunkSize: 64 * KiB, inflightBytes: MiB, concurrency: 1,
        onProgress: (p) => {
          if (p.bytesDone >= 2 * MiB) ac.abort();
        },
      },
      { onJobResult: (j) => jobs.push(j) },
    )), 'ABORT_ERR');
    // Pre-touched blocks lie ahead of the chunks, so past the checkpoint the re-run resumes from.
    expect(jobs[0].aborted).toBe(true);
    expect(jobs[0].pretouched).toBeGreaterThanOrEqual(1);
    const t = await pb.openImage(dst);
    const cp = JSON.parse((await t.getMetadata('rbd-stream.checkpoint'))!) as { doneOffset: number; fresh: boolean };
    await t.close();
    expect(cp.fresh).toBe(true);
    expect(cp.doneOffset).toBeLessThan(SIZE);
    const r = await replicate({ source: src, toSnapshot: 's', target: { pool: pb, name: dst } });
    expect(r.resumed).toBe(true);
    expect(await rbdExportMd5(B, `${B.pool}/${dst}@s`)).toBe(await rbdExportMd5(A, `${A.pool}/${srcName}@s`));
    expect(await objectsOf(B, `${dst}@s`)).toEqual(expectedTargetObjects);
  });

  it('not into objects under 256 KiB (a block each would be a large share of the writes)', async () => {
    const small = `pretouch-small-${process.pid}-${Date.now().toString(36)}`;
    await pa.createImage(small, 4 * MiB, { order: 16 }); // 64 KiB objects; the target inherits them
    const img = await pa.openImage(small);
    try {
      for (let o = 0; o < 64; o += 2) await img.write(fill(64 * KiB, 0x10 + o), o * 64 * KiB);
      await img.createSnapshot('s');
      const dst = `pretouch-small-dst-${process.pid}-${Date.now().toString(36)}`;
      onB.push(dst);
      const jobs: NativeCopyResult[] = [];
      await replicate(withReplicateTestHooks(
        { source: img, toSnapshot: 's', target: { pool: pb, name: dst, create: {} }, chunkSize: 64 * KiB, inflightBytes: 256 * KiB },
        { onJobResult: (j) => jobs.push(j) },
      ));
      expect(jobs[0].pretouched).toBe(0);
      expect(await rbdExportMd5(B, `${B.pool}/${dst}@s`)).toBe(await rbdExportMd5(A, `${A.pool}/${small}@s`));
    } finally {
      await img.close();
      await rbdRemoveImage(A, small);
    }
  });

  it('not into an existing target, nor with verify', async () => {
    const { dst, jobs } = await copy(true, { verify: true });
    expect(jobs.map((j) => j.pretouched)).toEqual([expect.any(Number), 0]); // the verify job never pre-touches
    // Objects 6 and 8 are new to the target: an incremental copies them without pre-touch.
    await src.write(fill(4 * KiB, 0x66), 6 * OBJECT);
    await src.write(fill(4 * KiB, 0x88), 8 * OBJECT);
    await src.createSnapshot('s2');
    try {
      const inc: NativeCopyResult[] = [];
      await replicate(withReplicateTestHooks(
        { source: src, fromSnapshot: 's', toSnapshot: 's2', target: { pool: pb, name: dst } },
        { onJobResult: (j) => inc.push(j) },
      ));
      expect(inc[0].pretouched).toBe(0);
      expect(inc[0].bytesWritten).toBe(8 * KiB);
      expect(await rbdExportMd5(B, `${B.pool}/${dst}@s2`)).toBe(await rbdExportMd5(A, `${A.pool}/${srcName}@s2`));
    } finally {
      await src.removeSnapshot('s2');
    }
  });
});
