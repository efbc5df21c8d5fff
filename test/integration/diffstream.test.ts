// Over ~400 lines: export, import and CLI interop share one set of source images and snapshots.
// rbd diff streams: byte equality and interop with the real rbd CLI, import checks, corrupt input.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Readable } from 'node:stream';
import fc from 'fast-check';
import { Rados, importDiff, librbdVersion, type Image, type Pool } from '../../lib/index.js';
import {
  END_RECORD, TAG, encodeBanner, encodeExtentHead, encodeName, encodeProtect, encodeSize, inspectDiff, parseDiff,
  type DiffEvent,
} from '../../lib/transfer/diff-format.js';
import { sourceIdentity } from '../../lib/transfer/identity.js';
import { getClusters, rbdCli, rbdExportMd5, type TestCluster } from '../support/clusters.js';
import { chunk } from '../support/chunks.js';

const { a, b } = getClusters() as { a: TestCluster; b: TestCluster };
const tag = `ds${process.pid}`;
const MiB = 1 << 20;

async function connect(c: TestCluster): Promise<Rados> {
  return Rados.connect({ conf: c.conf, keyring: c.keyring, user: c.user });
}

async function collect(r: Readable): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of r) parts.push(c as Buffer);
  return Buffer.concat(parts);
}

function pattern(len: number, seed: number): Buffer {
  const buf = Buffer.alloc(len);
  for (let i = 0; i < len; i += 512) buf.write(`seed ${seed} block ${i} `.padEnd(512, String.fromCharCode(97 + (seed % 26))), i);
  return buf;
}

/** Splits an `rbd export --export-format 2` image stream into its embedded `rbd diff v2` streams. */
function diffsOfImageV2(img: Buffer): Buffer[] {
  const head = Buffer.from('rbd image v2\n');
  expect(img.subarray(0, head.length).equals(head)).toBe(true);
  let p = head.length;
  while (img[p] !== 0x45 /* E */) p += 1 + 8 + Number(img.readBigUInt64LE(p + 1));
  p += 1;
  const diffsBanner = 'rbd image diffs v2\n';
  expect(img.subarray(p, p + diffsBanner.length).toString()).toBe(diffsBanner);
  p += diffsBanner.length;
  const n = Number(img.readBigUInt64LE(p));
  p += 8;
  const out: Buffer[] = [];
  for (let i = 0; i < n; i++) {
    const start = p;
    p += 12; // banner
    for (;;) {
      const t = img[p];
      if (t === 0x65) { p += 1; break; }
      const len = Number(img.readBigUInt64LE(p + 1));
      // 'p' carries one byte whatever its length says (8 up to Pacific, 1 since Quincy).
      p += 1 + 8 + (t === 0x70 ? 1 : len);
    }
    out.push(img.subarray(start, p));
  }
  return out;
}

/** The record length a v2 diff's 'p' record states (undefined without one). */
function protectLengthOf(diff: Buffer): number | undefined {
  let p = 12; // banner
  while (diff[p] !== 0x65 && p < diff.length) {
    const len = Number(diff.readBigUInt64LE(p + 1));
    if (diff[p] === 0x70) return len;
    p += 1 + 8 + len;
  }
  return undefined;
}

/**
 * The 'p' record length this release's `rbd export --export-format 2` writes: 8 up to Pacific
 * (librbd 1.16), 1 from Quincy (librbd 1.17, ceph PR #43907). The `rbd` CLI these tests run comes
 * with the librbd the addon loads (host, chroot and cross arrangements alike).
 */
const RELEASE_PROTECT_LENGTH = Number(librbdVersion.split('.')[1]) >= 17 ? 1 : 8;

/** Wraps diff v2 streams into an image stream `rbd import --export-format 2` accepts. */
function imageV2Of(diffs: Buffer[]): Buffer {
  const n = Buffer.alloc(8);
  n.writeBigUInt64LE(BigInt(diffs.length));
  return Buffer.concat([Buffer.from('rbd image v2\n'), Buffer.from('E'), Buffer.from('rbd image diffs v2\n'), n, ...diffs]);
}

let ra: Rados;
let rb: Rados;
let pa: Pool;
let pb: Pool;
let src: Image;
const SRC = `${tag}-src`;
const cleanup: (() => Promise<unknown>)[] = [];

async function rmImage(c: TestCluster, name: string) {
  await rbdCli(c, ['snap', 'purge', '--no-progress', `${c.pool}/${name}`]).catch(() => {});
  await rbdCli(c, ['rm', '--no-progress', `${c.pool}/${name}`]).catch(() => {});
}

beforeAll(async () => {
  ra = await connect(a);
  rb = await connect(b);
  pa = await ra.openPool(a.pool);
  pb = await rb.openPool(b.pool);
  await pa.createImage(SRC, 16 * MiB, { order: 22 });
  cleanup.push(() => rmImage(a, SRC));
  src = await pa.openImage(SRC);
  // s1: data in three objects, an explicitly written zero block (exported as 'z'), a hole.
  await src.write(pattern(3 * MiB, 1), 0);
  await src.write(Buffer.alloc(MiB), 5 * MiB);
  await src.write(pattern(64 * 1024, 2), 9 * MiB + 4096);
  await src.createSnapshot('s1');
  // s2: overwrite, discard a range, grow the image and write past the old end.
  await src.write(pattern(256 * 1024, 3), MiB);
  await src.writeZeroes(2 * MiB, MiB);
  await src.resize(20 * MiB);
  await src.write(pattern(MiB, 4), 18 * MiB);
  await src.createSnapshot('s2');
  await src.protectSnapshot('s2');
});

afterAll(async () => {
  await src?.unprotectSnapshot('s2').catch(() => {});
  await src?.close();
  for (const f of cleanup.reverse()) await f().catch(() => {});
  await ra?.close();
  await rb?.close();
});

describe('exportDiff', () => {
  it('a clone exports parent-backed data like `rbd export-diff` (full and incremental); the import matches', async () => {
    const child = `${tag}-clone`;
    const dst = `${tag}-clone-dst`;
    await rbdCli(a, ['clone', `${a.pool}/${SRC}@s2`, `${a.pool}/${child}`]);
    try {
      const c = await pa.openImage(child);
      try {
        await c.write(pattern(128 * 1024, 5), 2 * MiB + 4096); // copy-up of a parent object
        await c.discard(9 * MiB, MiB); // hides parent data
        await c.createSnapshot('c1');
        await c.write(pattern(64 * 1024, 6), 12 * MiB);
        await c.createSnapshot('c2');
        const full = await collect(c.exportDiff({ snapshot: 'c1' }));
        expect(full.equals(await rbdCli(a, ['export-diff', '--no-progress', `${a.pool}/${child}@c1`, '-'], { buffer: true }))).toBe(true);
        const inc = await collect(c.exportDiff({ fromSnapshot: 'c1', snapshot: 'c2' }));
        expect(inc.equals(await rbdCli(a, ['export-diff', '--no-progress', '--from-snap', 'c1', `${a.pool}/${child}@c2`, '-'], { buffer: true }))).toBe(true);
        await pb.createImage(dst, MiB);
        cleanup.push(() => rmImage(b, dst));
        const t = await pb.openImage(dst);
        try {
          await importDiff({ input: Readable.from([full]), target: t });
          await importDiff({ input: Readable.from([inc]), target: t });
        } finally {
          await t.close();
        }
        for (const snap of ['c1', 'c2']) expect(await rbdExportMd5(b, `${b.pool}/${dst}@${snap}`)).toBe(await rbdExportMd5(a, `${a.pool}/${child}@${snap}`));
      } finally {
        await c.close();
      }
    } finally {
      await rmImage(a, child);
    }
  });

  it('v1 streams are byte-identical to `rbd export-diff` (full and incremental)', async () => {
    const full = await collect(src.exportDiff({ snapshot: 's1' }));
    const cliFull = await rbdCli(a, ['export-diff', '--no-progress', `${a.pool}/${SRC}@s1`, '-'], { buffer: true });
    expect(full.subarray(0, 12).toString()).toBe('rbd diff v1\n');
    expect(full.equals(cliFull)).toBe(true);
    const inc = await collect(src.exportDiff({ fromSnapshot: 's1', snapshot: 's2' }));
    const cliInc = await rbdCli(a, ['export-diff', '--no-progress', '--from-snap', 's1', `${a.pool}/${SRC}@s2`, '-'], { buffer: true });
    expect(inc.equals(cliInc)).toBe(true);
    // The zero block written at 5 MiB is a 'z' record, not data.
    const s = await inspectDiff([full]);
    expect(s).toMatchObject({ version: 1, toSnapshot: 's1', size: 16 * MiB });
    expect(s.zeroExtents).toBeGreaterThan(0);
    expect(s.streamBytes).toBe(full.length);
  });

  it('v2 streams equal the diffs embedded by `rbd export --export-format 2`', async () => {
    const img = await rbdCli(a, ['export', '--no-progress', '--export-format', '2', `${a.pool}/${SRC}`, '-'], { buffer: true });
    const diffs = diffsOfImageV2(img);
    expect(diffs.length).toBe(3); // →s1, s1→s2, s2→head
    const full = await collect(src.exportDiff({ snapshot: 's1', format: 2 }));
    const inc = await collect(src.exportDiff({ fromSnapshot: 's1', snapshot: 's2', format: 2 }));
    // The release's own 'p' length, in the CLI's stream and in ours (librbd ${librbdVersion}).
    expect(protectLengthOf(diffs[1])).toBe(RELEASE_PROTECT_LENGTH);
    expect(protectLengthOf(inc)).toBe(RELEASE_PROTECT_LENGTH);
    expect(full.equals(diffs[0])).toBe(true);
    expect(inc.equals(diffs[1])).toBe(true);
    expect((await inspectDiff([inc])).protected).toBe(true);
    // Either length parses the same (a stream from another release's rbd).
    const other = RELEASE_PROTECT_LENGTH === 1 ? 8 : 1;
    const p = inc.indexOf(Buffer.of(0x70, RELEASE_PROTECT_LENGTH, 0, 0, 0, 0, 0, 0, 0, 1));
    expect(p).toBeGreaterThan(0);
    const swapped = Buffer.from(inc);
    swapped.writeBigUInt64LE(BigInt(other), p + 1);
    expect(await inspectDiff([swapped])).toMatchObject({ version: 2, protected: true, toSnapshot: 's2', streamBytes: inc.length });
  });

  it('our v1 export → `rbd import-diff` reproduces both snapshots', async () => {
    const name = `${tag}-cli-v1`;
    await rbdCli(b, ['create', '--size', '1M', `${b.pool}/${name}`]);
    cleanup.push(() => rmImage(b, name));
    for (const [from, to] of [[undefined, 's1'], ['s1', 's2']] as const) {
      const stream = await collect(src.exportDiff({ fromSnapshot: from, snapshot: to }));
      await rbdCli(b, ['import-diff', '--no-progress', '-', `${b.pool}/${name}`], { input: stream });
      expect(await rbdExportMd5(b, `${b.pool}/${name}@${to}`)).toBe(await rbdExportMd5(a, `${a.pool}/${SRC}@${to}`));
    }
  });

  it('our v2 export → `rbd import --export-format 2` reproduces the image', async () => {
    const name = `${tag}-cli-v2`;
    cleanup.push(() => rmImage(b, name));
    const diffs = [
      await collect(src.exportDiff({ snapshot: 's1', format: 2 })),
      await collect(src.exportDiff({ fromSnapshot: 's1', snapshot: 's2', format: 2 })),
    ];
    await rbdCli(b, ['import', '--no-progress', '--export-format', '2', '-', `${b.pool}/${name}`], { input: imageV2Of(diffs) });
    for (const s of ['s1', 's2']) {
      expect(await rbdExportMd5(b, `${b.pool}/${name}@${s}`)).toBe(await rbdExportMd5(a, `${a.pool}/${SRC}@${s}`));
    }
    const snaps = JSON.parse(await rbdCli(b, ['snap', 'ls', '--format', 'json', `${b.pool}/${name}`]));
    expect(snaps.find((s: { name: string }) => s.name === 's2').protected).toBe('true');
    await rbdCli(b, ['snap', 'unprotect', `${b.pool}/${name}@s2`]);
  });

  it('inspect agrees with `rbd diff` on extents and bytes', async () => {
    const stream = await collect(src.exportDiff({ fromSnapshot: 's1', snapshot: 's2' }));
    const s = await inspectDiff(Readable.from([stream]));
    const rows = JSON.parse(await rbdCli(a, ['diff', '--format', 'json', '--from-snap', 's1', `${a.pool}/${SRC}@s2`])) as
      { offset: number; length: number; exists: string }[];
    expect(s.dataExtents + s.zeroExtents).toBe(rows.length);
    expect(s.dataBytes + s.zeroBytes).toBe(rows.reduce((n, r) => n + r.length, 0));
    expect(s).toMatchObject({ version: 1, fromSnapshot: 's1', toSnapshot: 's2', size: 20 * MiB, streamBytes: stream.length });
  });

  it('respects backpressure: an unread stream stops reading ahead', async () => {
    const name = `${tag}-bp`;
    await pa.createImage(name, 48 * MiB);
    cleanup.push(() => rmImage(a, name));
    const img = await pa.openImage(name);
    try {
      for (let o = 0; o < 48 * MiB; o += 4 * MiB) await img.write(pattern(4 * MiB, o), o);
      await img.createSnapshot('bp');
      let reached = 0;
      const r = img.exportDiff({ snapshot: 'bp', onProgress: (p) => { reached = p.offset; } });
      await new Promise((res) => r.once('readable', res));
      await new Promise((res) => setTimeout(res, 500));
      // Nothing consumed: buffered output stays near the high-water mark, far from the 48 MiB.
      expect(r.readableLength).toBeLessThanOrEqual(8 * MiB);
      expect(reached).toBeLessThanOrEqual(16 * MiB);
      const total = await collect(r);
      expect(total.length).toBeGreaterThan(48 * MiB);
    } finally {
      await img.close();
    }
  });

  it('missing snapshots reject with ENOENT on the stream', async () => {
    await expect(collect(src.exportDiff({ snapshot: 'nope' }))).rejects.toMatchObject({ code: 'ENOENT' });
    await expect(collect(src.exportDiff({ fromSnapshot: 'nope', snapshot: 's1' }))).rejects.toMatchObject({ code: 'ENOENT' });
    expect(() => src.exportDiff({ snapshot: 's1', format: 3 as 2 })).toThrow(RangeError);
    expect(() => src.exportDiff({} as { snapshot: string })).toThrow(TypeError);
  });
});

describe('importDiff', () => {
  it('checks its options object before touching the image', async () => {
    const name = `${tag}-imp-args`;
    await pb.createImage(name, MiB);
    cleanup.push(() => rmImage(b, name));
    const t = await pb.openImage(name);
    try {
      const input = [END_RECORD];
      await expect(importDiff(undefined as never)).rejects.toThrow(TypeError);
      await expect(importDiff({ input, target: t, verify: true } as never)).rejects.toThrow(/unknown option 'verify'/);
      await expect(importDiff({ input, target: null as never })).rejects.toThrow(TypeError);
      await expect(importDiff({ input, target: pb as never })).rejects.toThrow(/target must be an open Image/);
      await expect(importDiff({ input: 5 as never, target: t })).rejects.toThrow(TypeError);
      await expect(importDiff({ input, target: t, concurrency: 0 })).rejects.toThrow(RangeError);
      expect(await t.listSnapshots()).toEqual([]);
    } finally {
      await t.close();
    }
  });

  it('applies `rbd export-diff` v1 streams (full and incremental)', async () => {
    const name = `${tag}-imp-v1`;
    await pb.createImage(name, MiB);
    cleanup.push(() => rmImage(b, name));
    const t = await pb.openImage(name);
    try {
      const full = await rbdCli(a, ['export-diff', '--no-progress', `${a.pool}/${SRC}@s1`, '-'], { buffer: true });
      const r1 = await importDiff({ input: Readable.from([full]), target: t });
      expect(r1).toMatchObject({ version: 1, toSnapshot: 's1', size: 16 * MiB, resized: true });
      expect(await rbdExportMd5(b, `${b.pool}/${name}@s1`)).toBe(await rbdExportMd5(a, `${a.pool}/${SRC}@s1`));
      const inc = await rbdCli(a, ['export-diff', '--no-progress', '--from-snap', 's1', `${a.pool}/${SRC}@s2`, '-'], { buffer: true });
      // Tiny chunks: records split across chunk boundaries everywhere.
      const chunks: Buffer[] = [];
      for (let i = 0; i < inc.length; i += 1000) chunks.push(inc.subarray(i, i + 1000));
      const r2 = await importDiff({ input: Readable.from(chunks), target: t });
      expect(r2).toMatchObject({ fromSnapshot: 's1', toSnapshot: 's2', size: 20 * MiB });
      expect(await rbdExportMd5(b, `${b.pool}/${name}@s2`)).toBe(await rbdExportMd5(a, `${a.pool}/${SRC}@s2`));
      expect(await rbdExportMd5(b, `${b.pool}/${name}`)).toBe(await rbdExportMd5(a, `${a.pool}/${SRC}@s2`));
    } finally {
      await t.close();
    }
  });

  it('applies rbd v2 diffs (from `rbd export --export-format 2`), protecting as recorded', async () => {
    const name = `${tag}-imp-v2`;
    await pb.createImage(name, MiB);
    cleanup.push(async () => {
      await rbdCli(b, ['snap', 'unprotect', `${b.pool}/${name}@s2`]).catch(() => {});
      await rmImage(b, name);
    });
    const img = await rbdCli(a, ['export', '--no-progress', '--export-format', '2', `${a.pool}/${SRC}`, '-'], { buffer: true });
    const diffs = diffsOfImageV2(img);
    const t = await pb.openImage(name);
    try {
      expect(await importDiff({ input: [diffs[0]], target: t })).toMatchObject({ version: 2, toSnapshot: 's1', protected: false });
      expect(await importDiff({ input: [diffs[1]], target: t })).toMatchObject({ version: 2, fromSnapshot: 's1', toSnapshot: 's2', protected: true });
      // The head diff has no 't': applied, no snapshot made.
      const r3 = await importDiff({ input: [diffs[2]], target: t });
      expect(r3.fromSnapshot).toBe('s2');
      expect(r3.toSnapshot).toBeUndefined();
      expect((await t.getSnapshot('s2'))?.protected).toBe(true);
      for (const s of ['s1', 's2']) {
        expect(await rbdExportMd5(b, `${b.pool}/${name}@${s}`)).toBe(await rbdExportMd5(a, `${a.pool}/${SRC}@${s}`));
      }
    } finally {
      await t.close();
    }
  });

  it('follows a shrinking image (the s record shrinks the target)', async () => {
    const name = `${tag}-shrink`;
    await pa.createImage(name, 8 * MiB);
    cleanup.push(() => rmImage(a, name), () => rmImage(b, name));
    const s = await pa.openImage(name);
    await s.write(pattern(8 * MiB, 5), 0);
    await s.createSnapshot('big');
    await s.resize(3 * MiB + 4096, { allowShrink: true });
    await s.write(pattern(4096, 6), 3 * MiB);
    await s.createSnapshot('small');
    await s.close();
    await pb.createImage(name, MiB);
    const t = await pb.openImage(name);
    try {
      for (const [from, to] of [[undefined, 'big'], ['big', 'small']] as const) {
        const stream = await rbdCli(a, ['export-diff', '--no-progress', ...(from ? ['--from-snap', from] : []), `${a.pool}/${name}@${to}`, '-'], { buffer: true });
        await importDiff({ input: [stream], target: t });
        expect(await rbdExportMd5(b, `${b.pool}/${name}@${to}`)).toBe(await rbdExportMd5(a, `${a.pool}/${name}@${to}`));
      }
      expect(await t.size()).toBe(3 * MiB + 4096);
    } finally {
      await t.close();
    }
  });

  it("refuses with import-diff's checks and the base guards", async () => {
    const name = `${tag}-guard`;
    await pb.createImage(name, MiB);
    cleanup.push(() => rmImage(b, name));
    const t = await pb.openImage(name);
    try {
      const inc = await collect(src.exportDiff({ fromSnapshot: 's1', snapshot: 's2' }));
      // No base on the target.
      await expect(importDiff({ input: [inc], target: t })).rejects.toMatchObject({ code: 'ENOENT', snapshot: 's1' });
      const full = await collect(src.exportDiff({ snapshot: 's1' }));
      const id1 = await sourceIdentity(src, 's1');
      await importDiff({ input: [full], target: t, recordSource: id1 });
      // To-snapshot exists.
      await expect(importDiff({ input: [full], target: t })).rejects.toMatchObject({ code: 'EEXIST', snapshot: 's1' });
      // Wrong identity: the recorded source of s1 is not what the caller expects.
      const other = { ...id1, imageId: 'not-this-image' };
      await expect(importDiff({ input: [inc], target: t, expectSource: other })).rejects.toMatchObject({ code: 'ERR_WRONG_BASE' });
      // Target changed after its base (inside a range the diff rewrites).
      await t.write(Buffer.alloc(4096, 7), MiB);
      await expect(importDiff({ input: [inc], target: t, expectSource: id1 })).rejects.toMatchObject({ code: 'ERR_TARGET_CHANGED' });
      expect(await t.getSnapshot('s2')).toBeUndefined();
      // force overrides the guards (and overwrites the change).
      const r = await importDiff({ input: [inc], target: t, force: true, recordSource: await sourceIdentity(src, 's2') });
      expect(r.toSnapshot).toBe('s2');
      expect(await rbdExportMd5(b, `${b.pool}/${name}@s2`)).toBe(await rbdExportMd5(a, `${a.pool}/${SRC}@s2`));
      await t.unprotectSnapshot('s2').catch(() => {});
    } finally {
      await t.close();
    }
  });

  it('corrupt input rejects with a coded error and leaves no to-snapshot', async () => {
    const name = `${tag}-corrupt`;
    await pb.createImage(name, 16 * MiB);
    cleanup.push(() => rmImage(b, name));
    const t = await pb.openImage(name);
    const good = await collect(src.exportDiff({ snapshot: 's1' }));
    const goodV2 = await collect(src.exportDiff({ snapshot: 's1', format: 2 }));
    const head = Buffer.concat([encodeBanner(1), encodeName(1, TAG.to, 's1'), encodeSize(1, 16 * MiB)]);
    const cases: [string, Buffer, string][] = [
      ['bad banner', Buffer.concat([Buffer.from('rbd diff v9\n'), good.subarray(12)]), 'ERR_DIFF_BANNER'],
      ['empty', Buffer.alloc(0), 'ERR_DIFF_BANNER'],
      ['truncated in header', good.subarray(0, 16), 'ERR_DIFF_TRUNCATED'],
      ['truncated in data', good.subarray(0, good.length - 100), 'ERR_DIFF_TRUNCATED'],
      ['no end record', good.subarray(0, good.length - 1), 'ERR_DIFF_TRUNCATED'],
      ['v2 truncated', goodV2.subarray(0, goodV2.length - 5), 'ERR_DIFF_TRUNCATED'],
      ['unknown tag', Buffer.concat([head, Buffer.from('q'), END_RECORD]), 'ERR_DIFF_UNKNOWN_TAG'],
      ["'p' in v1", Buffer.concat([head, Buffer.from('p\x01'), END_RECORD]), 'ERR_DIFF_UNKNOWN_TAG'],
      ['write past the image', Buffer.concat([head, encodeExtentHead(1, false, 16 * MiB - 10, 20), Buffer.alloc(20, 1), END_RECORD]), 'ERR_DIFF_RANGE'],
      ['zero past the image', Buffer.concat([head, encodeExtentHead(1, true, 15 * MiB, 2 * MiB), END_RECORD]), 'ERR_DIFF_RANGE'],
      ['length past the stream', Buffer.concat([head, encodeExtentHead(1, false, 0, MiB), Buffer.alloc(1000, 1)]), 'ERR_DIFF_TRUNCATED'],
      ['v2 record length mismatch', Buffer.concat([encodeBanner(2), Buffer.from([TAG.size]), Buffer.from('0900000000000000', 'hex'), Buffer.alloc(8), END_RECORD]), 'ERR_DIFF_CORRUPT'],
      ['offset beyond 2^53', Buffer.concat([head, Buffer.from('z'), Buffer.alloc(8, 0xff), Buffer.alloc(8), END_RECORD]), 'ERR_DIFF_RANGE'],
    ];
    try {
      for (const [what, bytes, code] of cases) {
        const err = await importDiff({ input: [bytes], target: t }).then(() => undefined, (e: unknown) => e);
        expect(err, what).toBeInstanceOf(Error);
        expect((err as { code?: string }).code, what).toBe(code);
        expect((err as Error).message, what).toMatch(/stream|banner|record|past/);
        expect(await t.getSnapshot('s1'), what).toBeUndefined();
        await expect(inspectDiff([bytes]), what).rejects.toMatchObject({ code });
      }
      // Still usable afterwards: the intact stream applies.
      await importDiff({ input: [good], target: t });
      expect(await rbdExportMd5(b, `${b.pool}/${name}@s1`)).toBe(await rbdExportMd5(a, `${a.pool}/${SRC}@s1`));
    } finally {
      await t.close();
    }
  });
});

describe('diff stream parser (property tests)', () => {
  const name = fc.stringMatching(/^[a-z0-9._-]{1,20}$/);
  const extent = fc.record({
    zero: fc.boolean(),
    offset: fc.integer({ min: 0, max: 1 << 20 }),
    data: fc.uint8Array({ minLength: 1, maxLength: 300 }),
  });
  const streamArb = fc.record({
    v: fc.constantFrom(1 as const, 2 as const),
    from: fc.option(name, { nil: undefined }),
    to: fc.option(name, { nil: undefined }),
    prot: fc.option(fc.boolean(), { nil: undefined }),
    protLen: fc.constantFrom(1 as const, 8 as const), // Pacific's rbd writes 8, Quincy's and later 1
    extents: fc.array(extent, { maxLength: 8 }),
  });
  type S = { v: 1 | 2; from?: string; to?: string; prot?: boolean; protLen: 1 | 8; extents: { zero: boolean; offset: number; data: Uint8Array }[] };
  const encode = (s: S) => {
    const parts = [encodeBanner(s.v)];
    if (s.from) parts.push(encodeName(s.v, TAG.from, s.from));
    if (s.to) parts.push(encodeName(s.v, TAG.to, s.to));
    if (s.v === 2 && s.prot !== undefined) parts.push(encodeProtect(s.prot, s.protLen));
    parts.push(encodeSize(s.v, 2 << 20));
    for (const e of s.extents) {
      parts.push(encodeExtentHead(s.v, e.zero, e.offset, e.data.length));
      if (!e.zero) parts.push(Buffer.from(e.data));
    }
    parts.push(END_RECORD);
    return Buffer.concat(parts);
  };

  it('round-trips any record sequence, however it is chunked', async () => {
    await fc.assert(fc.asyncProperty(streamArb, fc.array(fc.nat(), { maxLength: 10 }), async (s, cuts) => {
      const buf = encode(s);
      const evs: DiffEvent[] = [];
      for await (const ev of parseDiff(chunk(buf, cuts))) evs.push(ev);
      const data = evs.filter((e) => e.type === 'data').map((e) => (e as { data: Buffer }).data);
      const writes = s.extents.filter((e) => !e.zero);
      expect(Buffer.concat(data).equals(Buffer.concat(writes.map((e) => Buffer.from(e.data))))).toBe(true);
      const summary = await inspectDiff(chunk(buf, cuts));
      expect(summary).toMatchObject({
        version: s.v, size: 2 << 20, dataExtents: writes.length, zeroExtents: s.extents.length - writes.length, streamBytes: buf.length,
      });
      expect(summary.fromSnapshot).toBe(s.from);
      expect(summary.toSnapshot).toBe(s.to);
      expect(summary.protected).toBe(s.v === 2 ? s.prot : undefined);
    }), { numRuns: 200 });
  });

  it('any truncation is ERR_DIFF_TRUNCATED or ERR_DIFF_BANNER, never a crash', async () => {
    await fc.assert(fc.asyncProperty(streamArb, fc.nat(), async (s, cut) => {
      const buf = encode(s);
      const part = buf.subarray(0, cut % buf.length);
      const err = await inspectDiff([part]).then(() => undefined, (e: { code?: string }) => e);
      expect(err?.code).toBe(part.length < 12 ? 'ERR_DIFF_BANNER' : 'ERR_DIFF_TRUNCATED');
    }), { numRuns: 300 });
  });

  it('random bytes after a valid banner give only coded ERR_DIFF_* errors', async () => {
    await fc.assert(fc.asyncProperty(fc.constantFrom(1 as const, 2 as const), fc.uint8Array({ maxLength: 64 }), async (v, junk) => {
      const err = await inspectDiff([encodeBanner(v), Buffer.from(junk)]).then(() => undefined, (e: { code?: string }) => e);
      if (err !== undefined) expect(err.code).toMatch(/^ERR_DIFF_(TRUNCATED|UNKNOWN_TAG|RANGE|CORRUPT)$/);
    }), { numRuns: 300 });
  });
});

