// native headChangedSince (native/object_map.cc): "has the head changed since this snapshot", read
// from the fast-diff object maps in one round trip, against `rbd diff --whole-object --from-snap`
// (the oracle: changed ⇔ it lists an extent). Where the maps cannot answer alone it says 0 (unknown)
// and replicate asks diff_iterate instead.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { native } from '../../lib/binding/index.js';
import { kHandle } from '../../lib/core/internal.js';
import type { Image } from '../../lib/index.js';
import { rbdCli, rbdPurgeImage } from '../support/clusters.js';
import { A, KiB, MiB, cliDiff, rnd, usePool } from '../support/helpers.js';

const OBJ = 4 * MiB;
const OBJECTS = 6;

const answer = (img: Image, snap: string) => native.headChangedSince(img[kHandle], snap);

async function oracle(name: string, snap: string): Promise<1 | 2> {
  return (await cliDiff(A, name, { fromSnap: snap, wholeObject: true })).length > 0 ? 2 : 1;
}

type Op =
  | { kind: 'write'; object: number; offset: number; length: number }
  | { kind: 'discardObject'; object: number }
  | { kind: 'discardPart'; object: number }
  | { kind: 'zeroes'; object: number };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ kind: fc.constant('write' as const), object: fc.nat(OBJECTS - 1), offset: fc.nat(OBJ / (4 * KiB) - 2).map((x) => x * 4 * KiB), length: fc.constantFrom(4 * KiB, 8 * KiB) }),
  fc.record({ kind: fc.constant('discardObject' as const), object: fc.nat(OBJECTS - 1) }),
  fc.record({ kind: fc.constant('discardPart' as const), object: fc.nat(OBJECTS - 1) }),
  fc.record({ kind: fc.constant('zeroes' as const), object: fc.nat(OBJECTS - 1) }),
);

async function apply(img: Image, op: Op): Promise<void> {
  const at = op.object * OBJ;
  if (op.kind === 'write') await img.write(rnd(op.length), at + op.offset);
  else if (op.kind === 'discardObject') await img.discard(at, OBJ);
  else if (op.kind === 'discardPart') await img.discard(at + 64 * KiB, 64 * KiB);
  else await img.writeZeroes(at, 4 * KiB);
}

describe('headChangedSince (object maps)', () => {
  const fx = usePool(A);

  it('agrees with rbd diff --whole-object on any writes, discards and zeroing before and after the base', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(opArb, { maxLength: 4 }), fc.array(opArb, { maxLength: 3 }), async (before, after) => {
        const name = await fx.images.create(fx.pool, 'om-prop', OBJECTS * OBJ);
        const img = await fx.pool.openImage(name);
        try {
          for (const op of before) await apply(img, op);
          await img.createSnapshot('base');
          for (const op of after) await apply(img, op);
          await img.flush();
          const got = await answer(img, 'base');
          expect(got).not.toBe(0);
          expect(got).toBe(await oracle(name, 'base'));
        } finally {
          await img.close();
          await rbdPurgeImage(A, name);
        }
      }),
      { numRuns: 12, seed: 20261207 },
    );
  });

  it('a snapshot taken and removed after the base: its writes still count (librbd folds them into the head map)', async () => {
    const name = await fx.images.create(fx.pool, 'om-between', OBJECTS * OBJ);
    const img = await fx.pool.openImage(name);
    try {
      await img.write(rnd(4 * KiB), 0);
      await img.createSnapshot('base');
      expect(await answer(img, 'base')).toBe(1);
      await img.write(rnd(4 * KiB), OBJ);
      await img.write(rnd(4 * KiB), 0);
      await img.createSnapshot('later');
      // A snapshot newer than the base: the maps between count, so the maps alone do not answer.
      expect(await answer(img, 'base')).toBe(0);
      await img.removeSnapshot('later');
      expect(await oracle(name, 'base')).toBe(2);
      expect(await answer(img, 'base')).toBe(2);
    } finally {
      await img.close();
    }
  });

  it('unknown (0) without fast-diff, with a map flagged invalid, or for a missing snapshot', async () => {
    const plain = await fx.images.create(fx.pool, 'om-plain', 2 * OBJ, { features: ['layering', 'exclusive-lock'] });
    const p = await fx.pool.openImage(plain);
    const name = await fx.images.create(fx.pool, 'om-invalid', 2 * OBJ);
    const img = await fx.pool.openImage(name);
    try {
      await p.createSnapshot('base');
      expect(await answer(p, 'base')).toBe(0);
      await img.write(rnd(4 * KiB), 0);
      await img.createSnapshot('base');
      expect(await answer(img, 'nosuch')).toBe(0);
      expect(await answer(img, 'base')).toBe(1);
      // Disabled and enabled again, the head's maps are flagged invalid until rebuilt.
      await img.updateFeatures(['fast-diff', 'object-map'], false);
      await img.updateFeatures(['object-map', 'fast-diff'], true);
      expect((await img.stat()).flags).toEqual({ objectMapInvalid: true, fastDiffInvalid: true });
      expect(await answer(img, 'base')).toBe(0);
    } finally {
      await p.close();
      await img.close();
    }
  });

  it('a clone: its own writes count, the parent\'s data does not', async () => {
    const parent = await fx.images.create(fx.pool, 'om-parent', 2 * OBJ);
    const pimg = await fx.pool.openImage(parent);
    await pimg.write(rnd(MiB), 0);
    await pimg.createSnapshot('p');
    await pimg.protectSnapshot('p');
    const child = fx.images.name('om-child');
    await rbdCli(A, ['clone', `${A.pool}/${parent}@p`, `${A.pool}/${child}`]);
    const cimg = await fx.pool.openImage(child);
    try {
      await cimg.createSnapshot('base');
      expect(await answer(cimg, 'base')).toBe(await oracle(child, 'base'));
      expect(await answer(cimg, 'base')).toBe(1);
      await cimg.write(rnd(4 * KiB), OBJ + 8 * KiB);
      await cimg.flush();
      expect(await answer(cimg, 'base')).toBe(2);
      expect(await oracle(child, 'base')).toBe(2);
    } finally {
      await cimg.close();
      await pimg.close();
    }
  });
});
