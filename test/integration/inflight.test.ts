// replicate()'s in-flight bounds (ops and bytes, separately), its bandwidth cap, and the records it
// keeps on the target (written in one op each, without librbd's notify): real clusters a → b, the
// rbd CLI as oracle.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { replicate, syncImage, syncPool, type Image, type Pool, type Rados } from '../../lib/index.js';
import { A, B as maybeB, KiB, MiB, connectTo, purgeImages, uniq } from '../support/helpers.js';
import { rbdCli, rbdExportMd5 } from '../support/clusters.js';

const B = maybeB ?? A;
let ra: Rados;
let rb: Rados;
let pa: Pool;
let pb: Pool;
const onA: string[] = [];
const onB: string[] = [];
const SIZE = 32 * MiB;
let src: Image;
let srcName: string;

/** Deterministic non-zero data (a zero block would become a zero run, not a write). */
function pattern(len: number, seed: number): Buffer {
  const b = Buffer.alloc(len);
  for (let i = 0; i < len; i += 4) b.writeUInt32LE(((Math.imul(i + 1, 2654435761) + seed) | 1) >>> 0, i);
  return b;
}

beforeAll(async () => {
  ra = await connectTo(A);
  rb = await connectTo(B);
  pa = await ra.openPool(A.pool);
  pb = await rb.openPool(B.pool);
  srcName = uniq('inflight-src');
  onA.push(srcName);
  await pa.createImage(srcName, SIZE);
  src = await pa.openImage(srcName);
  // base: 16 MiB of data; s1: 600 scattered 4 KiB changes and a few zeroed ranges on top.
  await src.write(pattern(16 * MiB, 1), 0);
  await src.createSnapshot('s0');
  for (let i = 0; i < 600; i++) await src.write(pattern(4 * KiB, i + 7), ((i * 7919) % (SIZE / (4 * KiB))) * 4 * KiB);
  await src.writeZeroes(2 * MiB, 64 * KiB);
  await src.discard(20 * MiB, 1 * MiB);
  await src.createSnapshot('s1');
});

afterAll(async () => {
  await src?.close();
  await ra?.close();
  await rb?.close();
  await purgeImages(A, onA);
  await purgeImages(B, onB);
});

const md5 = (c: typeof A, spec: string) => rbdExportMd5(c, `${c.pool}/${spec}`);

describe('replicate: in-flight bounds', () => {
  // Each pair exercises a different admission limit: one op at a time; many ops but one chunk of
  // buffers (every further chunk waits for bytes); a deep queue of tiny chunks.
  const cases = [
    { name: 'one op, one chunk', concurrency: 1, chunkSize: 64 * KiB, inflightBytes: 64 * KiB },
    { name: 'many ops, bytes bound at one chunk', concurrency: 4096, chunkSize: 256 * KiB, inflightBytes: 256 * KiB },
    { name: 'deep queue of 4 KiB chunks', concurrency: 2048, chunkSize: 4 * KiB, inflightBytes: 8 * MiB },
  ];
  for (const c of cases) {
    it(`${c.name}: full and incremental copies match the source`, async () => {
      const dst = uniq('inflight-dst');
      onB.push(dst);
      const { name: _, ...tuning } = c;
      const full = await replicate({ source: src, toSnapshot: 's0', target: { pool: pb, name: dst, create: {} }, ...tuning });
      // 16 MiB of data: the pipeline fills to the tighter of its two bounds, never past the bytes one.
      expect(full.peakInflightBytes).toBe(Math.min(c.inflightBytes, c.concurrency * c.chunkSize));
      const r = await replicate({ source: src, fromSnapshot: 's0', toSnapshot: 's1', target: { pool: pb, name: dst }, ...tuning, verify: true });
      // verify reads both sides: a chunk holds two buffers, and one chunk always goes.
      expect(r.peakInflightBytes).toBeGreaterThan(0);
      expect(r.peakInflightBytes).toBeLessThanOrEqual(Math.max(c.inflightBytes, 2 * c.chunkSize));
      expect(r.bytesWritten).toBeGreaterThan(0);
      expect(r.dataSeconds).toBeGreaterThan(0);
      expect(r.dataSeconds).toBeLessThanOrEqual(r.seconds);
      expect(await md5(B, `${dst}@s0`)).toBe(await md5(A, `${srcName}@s0`));
      expect(await md5(B, `${dst}@s1`)).toBe(await md5(A, `${srcName}@s1`));
    });
  }
});

describe('replicate: bandwidth', () => {
  it('never sends faster than the cap (a lower bound on the copy time), and the copy is exact', async () => {
    const dst = uniq('inflight-bw');
    onB.push(dst);
    const rate = 4 * MiB;
    const chunkSize = 256 * KiB;
    const r = await replicate({ source: src, toSnapshot: 's0', target: { pool: pb, name: dst, create: {} }, bandwidth: rate, chunkSize });
    expect(r.bytesWritten).toBe(16 * MiB);
    // A token bucket with one chunk of burst: the data phase cannot be shorter than this, however
    // fast the clusters are (an upper bound would be a timing assertion; the benchmark measures that).
    expect(r.dataSeconds).toBeGreaterThanOrEqual((r.bytesWritten - chunkSize) / rate - 0.05);
    expect(await md5(B, `${dst}@s0`)).toBe(await md5(A, `${srcName}@s0`));
  });

  it('syncImage passes the cap on; the incremental round is exact', async () => {
    const name = uniq('inflight-sync');
    onB.push(name);
    const first = await syncImage({ source: src, target: { pool: pb, name }, bandwidth: 64 * MiB, prefix: 'bw-' });
    expect(first.mode).toBe('full');
    await src.write(pattern(4 * MiB, 99), 8 * MiB);
    const second = await syncImage({ source: src, target: { pool: pb, name }, bandwidth: 4 * MiB, prefix: 'bw-' });
    expect(second.mode).toBe('incremental');
    expect(second.bytesWritten).toBe(4 * MiB);
    // one 1 MiB chunk of burst, then 3 MiB at 4 MiB/s
    expect(second.copySeconds).toBeGreaterThanOrEqual(0.75 - 0.05);
    expect(await md5(B, `${name}@${second.snapshot}`)).toBe(await md5(A, `${srcName}@${second.snapshot}`));
  });
});

describe('inflightBytes in sync rounds', () => {
  it('syncImage passes it on; syncPool shares it between the images copied at once (each its share, none more)', async () => {
    const names = [uniq('inflight-pa'), uniq('inflight-pb')];
    onA.push(...names);
    for (const [i, n] of names.entries()) {
      await pa.createImage(n, 8 * MiB);
      const h = await pa.openImage(n);
      await h.write(pattern(8 * MiB, 40 + i), 0);
      await h.close();
    }
    onB.push(...names);
    // Two at once sharing 4 MiB: 2 MiB each (two 1 MiB chunks). Unshared, each copy would fill to 4 MiB.
    const r = await syncPool({ source: pa, target: pb, images: names, parallel: 2, inflightBytes: 4 * MiB, prefix: 'infl-' });
    expect(r.summary).toMatchObject({ total: 2, ok: 2 });
    for (const x of r.images) {
      if (!x.ok) throw new Error(`${x.name}: ${x.error.code} ${x.error.message}`);
      expect(x.mode).toBe('full');
      expect(x.peakInflightBytes).toBe(2 * MiB);
      expect(await md5(B, `${x.name}@${x.snapshot}`)).toBe(await md5(A, `${x.name}@${x.snapshot}`));
    }
    // One image alone gets the whole of it.
    const h = await pa.openImage(names[0]);
    try {
      await h.write(pattern(8 * MiB, 77), 0);
      const one = await syncImage({ source: h, target: { pool: pb }, inflightBytes: 3 * MiB, prefix: 'infl-' });
      expect(one.mode).toBe('incremental');
      expect(one.peakInflightBytes).toBe(3 * MiB);
      expect(await md5(B, `${names[0]}@${one.snapshot}`)).toBe(await md5(A, `${names[0]}@${one.snapshot}`));
    } finally {
      await h.close();
    }
  });
});

describe('replicate: records on the target', () => {
  it('the identity is readable by the rbd CLI, bound to the snapshot id, and no checkpoint is left', async () => {
    const dst = uniq('inflight-meta');
    onB.push(dst);
    await replicate({ source: src, toSnapshot: 's0', target: { pool: pb, name: dst, create: {} } });
    const meta = JSON.parse(String(await rbdCli(B, ['image-meta', 'list', '--format', 'json', `${B.pool}/${dst}`]))) as Record<string, string>;
    expect(Object.keys(meta)).not.toContain('rbd-stream.checkpoint');
    const id = JSON.parse(meta['rbd-stream.snap.s0']);
    const snaps = JSON.parse(String(await rbdCli(B, ['snap', 'ls', '--format', 'json', `${B.pool}/${dst}`]))) as { id: number; name: string }[];
    expect(id.targetSnapId).toBe(snaps.find((s) => s.name === 's0')!.id);
    expect(id.imageId).toBe((await src.stat()).id);
    // An open handle of the target (its metadata read through librbd) sees the same records.
    const t = await pb.openImage(dst);
    expect(JSON.parse((await t.getMetadata('rbd-stream.snap.s0'))!).targetSnapId).toBe(id.targetSnapId);
    expect(await t.getMetadata('rbd-stream.checkpoint')).toBeUndefined();
    await t.close();
  });
});
