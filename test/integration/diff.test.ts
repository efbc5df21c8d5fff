// image.diff() against `rbd diff --format json` (with and without --whole-object).
import { describe, expect, it, vi } from 'vitest';
import { native } from '../../lib/binding/index.js';
import type { Extent, Image } from '../../lib/index.js';
import { rbdCli } from '../support/clusters.js';
import { A, KiB, MiB, cliDiff, rnd, usePool } from '../support/helpers.js';

async function collect(img: Image, opts: Parameters<Image['diff']>[0] = {}): Promise<Extent[]> {
  const out: Extent[] = [];
  for await (const batch of img.diff(opts)) out.push(...batch);
  return out;
}

/** Clip extents to [off, off+len), as librbd does for a windowed diff. */
function clip(ext: Extent[], off: number, len: number): Extent[] {
  const end = off + len;
  return ext
    .filter((e) => e.offset < end && e.offset + e.length > off)
    .map((e) => {
      const s = Math.max(e.offset, off);
      return { offset: s, length: Math.min(e.offset + e.length, end) - s, exists: e.exists };
    });
}

describe('image.diff', () => {
  const fx = usePool(A);

  /** Compares our diff with the CLI's for both granularities; returns the fine one. */
  async function expectSameAsCli(img: Image, spec: string, fromSnap?: string): Promise<Extent[]> {
    const fine = await collect(img, { fromSnapshot: fromSnap });
    expect(fine).toEqual(await cliDiff(A, spec, { fromSnap }));
    const whole = await collect(img, { fromSnapshot: fromSnap, wholeObject: true });
    expect(whole).toEqual(await cliDiff(A, spec, { fromSnap, wholeObject: true }));
    return fine;
  }

  /** The workload: sparse writes, whole-object discard, writeZeroes; snapshot in the middle. */
  async function workload(img: Image, objectSize: number) {
    await img.write(rnd(4 * KiB), 0);
    await img.write(rnd(100 * KiB), objectSize + 123);
    await img.write(rnd(objectSize), 3 * objectSize);
    await img.write(rnd(8 * KiB), 5 * objectSize - 4 * KiB); // crosses an object boundary
    await img.write(rnd(64 * KiB), 7 * objectSize);
    await img.createSnapshot('s1');
    await img.discard(3 * objectSize, objectSize); // whole object
    await img.writeZeroes(objectSize + 200, 1000);
    await img.writeZeroes(7 * objectSize, objectSize); // whole object zeroed
    await img.write(rnd(12 * KiB), 6 * objectSize + 5000);
    await img.write(rnd(4 * KiB), 0);
    await img.flush();
  }

  for (const [label, features] of [
    ['fast-diff', undefined],
    ['no object-map', ['layering', 'exclusive-lock'] as const],
  ] as const) {
    it(`${label}: full and from-snapshot diffs equal rbd diff (fine and --whole-object)`, async () => {
      const name = await fx.images.create(fx.pool, `diff-${features ? 'nomap' : 'fd'}`, 40 * MiB, features ? { features: [...features] } : {});
      const img = await fx.pool.openImage(name);
      const st = await img.stat();
      if (features) expect(st.features).not.toContain('object-map');
      else expect(st.features).toContain('fast-diff');
      await workload(img, st.objectSize);
      const full = await expectSameAsCli(img, name);
      expect(full.length).toBeGreaterThan(3);
      const since = await expectSameAsCli(img, name, 's1');
      // The discarded object shows up as not existing.
      expect(since).toContainEqual({ offset: 3 * st.objectSize, length: st.objectSize, exists: false });
      // And the snapshot itself, read through an image opened at it.
      const at = await fx.pool.openImage(name, { snapshot: 's1' });
      expect(await collect(at)).toEqual(await cliDiff(A, `${name}@s1`));
      await at.close();
      await img.close();
    });
  }

  it('offset/length windows equal the CLI diff clipped to the window', async () => {
    const name = await fx.images.create(fx.pool, 'diff-win', 40 * MiB);
    const img = await fx.pool.openImage(name);
    await workload(img, 4 * MiB);
    const cli = await cliDiff(A, name);
    const cliSince = await cliDiff(A, name, { fromSnap: 's1' });
    for (const [off, len] of [[0, 40 * MiB], [1 * MiB, 5 * MiB], [4 * MiB + 200, 1000], [19 * MiB, 20 * MiB], [30 * MiB, 10 * MiB]]) {
      expect(await collect(img, { offset: off, length: len })).toEqual(clip(cli, off, len));
      expect(await collect(img, { offset: off, length: len, fromSnapshot: 's1' })).toEqual(clip(cliSince, off, len));
    }
    // Without length: to the end.
    expect(await collect(img, { offset: 20 * MiB })).toEqual(clip(cli, 20 * MiB, 20 * MiB));
    // A window past the end yields nothing.
    expect(await collect(img, { offset: 80 * MiB, length: 4 * MiB })).toEqual([]);
    await img.close();
  });

  it('a resized image (grown, then shrunk) equals rbd diff', async () => {
    const name = await fx.images.create(fx.pool, 'diff-resize', 8 * MiB);
    const img = await fx.pool.openImage(name);
    await img.write(rnd(4 * KiB), 6 * MiB);
    await img.createSnapshot('small');
    await img.resize(24 * MiB);
    await img.write(rnd(1 * MiB), 20 * MiB);
    await img.createSnapshot('big');
    await img.resize(12 * MiB, { allowShrink: true });
    await img.write(rnd(4 * KiB), 9 * MiB);
    await expectSameAsCli(img, name);
    await expectSameAsCli(img, name, 'small');
    await expectSameAsCli(img, name, 'big');
    await img.close();
  });

  it('a clone: includeParent true equals rbd diff; false reports only the clone\'s own writes', async () => {
    const parent = await fx.images.create(fx.pool, 'diff-parent', 16 * MiB);
    const pimg = await fx.pool.openImage(parent);
    await pimg.write(rnd(1 * MiB), 0);
    await pimg.write(rnd(4 * KiB), 9 * MiB);
    await pimg.createSnapshot('base');
    await pimg.protectSnapshot('base');
    const child = fx.images.name('diff-child');
    await rbdCli(A, ['clone', `${A.pool}/${parent}@base`, `${A.pool}/${child}`]);
    const cimg = await fx.pool.openImage(child);
    await cimg.write(rnd(8 * KiB), 13 * MiB);
    await cimg.flush();
    const withParent = await expectSameAsCli(cimg, child);
    expect(withParent.some((e) => e.offset === 0)).toBe(true);
    const own = await collect(cimg, { includeParent: false });
    // Only the clone's own object (12..16 MiB, copied up on write; librbd reports the object's
    // extent from its start), none of the parent's data at 0 and 9 MiB.
    expect(own.length).toBeGreaterThan(0);
    for (const e of own) {
      expect(e.exists).toBe(true);
      expect(e.offset).toBeGreaterThanOrEqual(12 * MiB);
      expect(e.offset + e.length).toBeLessThanOrEqual(16 * MiB);
    }
    const ownEnd = Math.max(...own.map((e) => e.offset + e.length));
    expect(own.some((e) => e.offset <= 13 * MiB) && ownEnd >= 13 * MiB + 8 * KiB).toBe(true);
    expect(withParent.filter((e) => e.offset < 12 * MiB).length).toBeGreaterThan(0);
    const ownWhole = await collect(cimg, { includeParent: false, wholeObject: true });
    expect(ownWhole).toEqual([{ offset: 12 * MiB, length: 4 * MiB, exists: true }]);
    // Snapshot on the clone, then a change: from-snapshot diffs agree with the CLI.
    await cimg.createSnapshot('c1');
    await cimg.write(rnd(4 * KiB), 1 * MiB);
    await cimg.flush();
    await expectSameAsCli(cimg, child, 'c1');
    await cimg.close();
    await pimg.close();
  });

  it('batches: batchSize bounds every batch; concatenation is the same diff', async () => {
    const name = await fx.images.create(fx.pool, 'diff-batch', 64 * MiB, { order: 20 });
    const img = await fx.pool.openImage(name);
    await Promise.all(Array.from({ length: 40 }, (_, i) => img.write(rnd(4 * KiB), i * 1536 * KiB)));
    const all = await collect(img);
    expect(all).toEqual(await cliDiff(A, name));
    const batches: Extent[][] = [];
    for await (const b of img.diff({ batchSize: 7 })) batches.push(b);
    expect(batches.every((b) => b.length >= 1 && b.length <= 7)).toBe(true);
    expect(batches.length).toBeGreaterThanOrEqual(Math.ceil(all.length / 7));
    expect(batches.flat()).toEqual(all);
    await img.close();
  });

  it('pulled at the consumer\'s pace and stops promptly on abort (huge sparse image)', async () => {
    // 1 TiB, thin: without --whole-object librbd visits every object, so a full diff would take ages;
    // a consumer that stops after the first batch must not pay for the rest.
    // (object-map keeps its removal fast; a fine diff still visits every object in Pacific.)
    const name = await fx.images.create(fx.pool, 'diff-huge', 1024 * 1024 * MiB);
    const img = await fx.pool.openImage(name);
    await img.write(rnd(4 * KiB), 0);
    await img.write(rnd(4 * KiB), 512 * 1024 * MiB);
    const it1 = img.diff({ batchSize: 1 })[Symbol.asyncIterator]();
    const first = await it1.next();
    expect(first.value).toEqual([{ offset: 0, length: 4 * KiB, exists: true }]);
    await it1.return?.(undefined);

    // Abort mid-way: the iteration rejects with AbortError, and at most the ranges
    // already requested (one ahead) are fetched after the abort.
    const spy = vi.spyOn(native, 'getDiffExtents');
    const ac = new AbortController();
    let callsAtAbort = -1;
    setTimeout(() => {
      callsAtAbort = spy.mock.calls.length;
      ac.abort();
    }, 300);
    let batches = 0;
    const err = await (async () => {
      for await (const _ of img.diff({ signal: ac.signal, batchSize: 1 })) batches++;
    })().catch((e) => e);
    expect(err?.name).toBe('AbortError');
    expect(batches).toBe(1); // the write at 512 GiB was never reached
    expect(callsAtAbort).toBeGreaterThan(0);
    expect(spy.mock.calls.length - callsAtAbort).toBeLessThanOrEqual(1);
    spy.mockRestore();
    // An already-aborted signal rejects before any native call.
    const spy2 = vi.spyOn(native, 'getDiffExtents');
    const e2 = await (async () => {
      for await (const _ of img.diff({ signal: AbortSignal.abort() })) { /* */ }
    })().catch((e) => e);
    expect(e2?.name).toBe('AbortError');
    spy2.mockRestore();
    await img.close();
  });
});
