// Argument validation: TypeError/RangeError thrown in TypeScript before any native call.
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { Rados, type Image, type Pool } from '../../lib/index.js';
import { native } from '../../lib/binding/index.js';
import { A, Images, MiB, connectTo } from '../support/helpers.js';
import { kHandle } from '../../lib/core/internal.js';

type Ctor = typeof TypeError | typeof RangeError;

/** Spies on every native function so a test can assert none ran. */
function spyNative() {
  const spies = Object.keys(native)
    .filter((k) => typeof (native as unknown as Record<string, unknown>)[k] === 'function')
    .map((k) => vi.spyOn(native as unknown as Record<string, (...a: unknown[]) => unknown>, k));
  return () => spies.reduce((n, s) => n + s.mock.calls.length, 0);
}

/** The call throws (sync) or rejects (async) with `type`, and no native function ran. */
async function rejectsBeforeNative(type: Ctor, call: () => unknown, re?: RegExp): Promise<void> {
  const calls = spyNative();
  let err: unknown;
  try {
    await call();
  } catch (e) {
    err = e;
  }
  expect(err, `expected ${type.name}`).toBeInstanceOf(type);
  if (re) expect((err as Error).message).toMatch(re);
  expect(calls()).toBe(0);
  vi.restoreAllMocks();
}

const BAD_UINTS: [unknown, Ctor][] = [
  ['1', TypeError], [null, TypeError], [undefined, TypeError], [1n, TypeError], [{}, TypeError],
  [-1, RangeError], [1.5, RangeError], [NaN, RangeError], [Infinity, RangeError], [2 ** 53, RangeError], [2 ** 64, RangeError],
];
const BAD_NAMES: [unknown, Ctor][] = [
  [42, TypeError], [null, TypeError], [undefined, TypeError], [['a'], TypeError],
  ['', RangeError], ['x'.repeat(1025), RangeError], ['a/b', TypeError], ['a@b', TypeError], ['a\0b', TypeError],
];

describe('argument validation', () => {
  let r: Rados;
  let pool: Pool;
  let img: Image;
  const imgs = new Images(A);
  beforeAll(async () => {
    r = await connectTo(A);
    pool = await r.openPool(A.pool);
    img = await pool.openImage(await imgs.create(pool, 'args', 1 * MiB));
  });
  afterEach(() => vi.restoreAllMocks());
  afterAll(async () => {
    await r?.close();
    await imgs.purge();
  });

  it('the no-native-call check itself sees native calls (guards the helper)', async () => {
    const calls = spyNative();
    await img.stat();
    await img.read(0, 1);
    expect(calls()).toBe(2);
    vi.restoreAllMocks();
  });

  it('Rados.connect options', async () => {
    await rejectsBeforeNative(TypeError, () => Rados.connect(42 as never));
    await rejectsBeforeNative(TypeError, () => Rados.connect(null as never));
    await rejectsBeforeNative(TypeError, () => Rados.connect({ bogus: 1 } as never), /unknown option 'bogus'/);
    await rejectsBeforeNative(TypeError, () => Rados.connect({ conf: 5 } as never));
    await rejectsBeforeNative(RangeError, () => Rados.connect({ user: '' }));
    await rejectsBeforeNative(TypeError, () => Rados.connect({ keyring: 'a\0b' }));
    await rejectsBeforeNative(RangeError, () => Rados.connect({ timeoutMs: -1 }));
    await rejectsBeforeNative(RangeError, () => Rados.connect({ timeoutMs: 1.5 }));
    await rejectsBeforeNative(TypeError, () => Rados.connect({ timeoutMs: '3000' } as never));
    await rejectsBeforeNative(TypeError, () => Rados.connect({ config: { mon_host: 1 } } as never));
    await rejectsBeforeNative(TypeError, () => Rados.connect({ config: null } as never));
  });

  it('Rados methods', async () => {
    for (const [v, t] of BAD_NAMES) await rejectsBeforeNative(t, () => r.openPool(v as never));
    await rejectsBeforeNative(TypeError, () => r.openPool(A.pool, { ns: 'x' } as never), /unknown option/);
    await rejectsBeforeNative(TypeError, () => r.openPool(A.pool, { namespace: 'a/b' }));
    await rejectsBeforeNative(TypeError, () => r.command('osd' as never, { prefix: 'status' }));
    await rejectsBeforeNative(TypeError, () => r.command('mon', { noprefix: 1 } as never));
  });

  it('Pool methods: names, sizes, options', async () => {
    for (const [v, t] of BAD_NAMES) {
      await rejectsBeforeNative(t, () => pool.createImage(v as never, 1 * MiB));
      await rejectsBeforeNative(t, () => pool.openImage(v as never));
      await rejectsBeforeNative(t, () => pool.removeImage(v as never));
      await rejectsBeforeNative(t, () => pool.renameImage(v as never, 'ok'));
      await rejectsBeforeNative(t, () => pool.renameImage('ok', v as never));
    }
    for (const [v, t] of BAD_UINTS) await rejectsBeforeNative(t, () => pool.createImage('ok', v as never));
    await rejectsBeforeNative(TypeError, () => pool.createImage('ok', 1, { size: 1 } as never), /unknown option/);
    await rejectsBeforeNative(RangeError, () => pool.createImage('ok', 1, { order: 11 }));
    await rejectsBeforeNative(RangeError, () => pool.createImage('ok', 1, { order: 26 }));
    await rejectsBeforeNative(RangeError, () => pool.createImage('ok', 1, { features: ['warp-drive' as never] }));
    await rejectsBeforeNative(TypeError, () => pool.createImage('ok', 1, { features: 'layering' as never }));
    await rejectsBeforeNative(TypeError, () => pool.createImage('ok', 1, { dataPool: 3 as never }));
    await rejectsBeforeNative(TypeError, () => pool.openImage('ok', { readonly: true } as never), /unknown option/);
    await rejectsBeforeNative(TypeError, () => pool.openImage('ok', { readOnly: 'yes' } as never));
    await rejectsBeforeNative(TypeError, () => pool.openImage('ok', { snapshot: 'a@b' }));
    await rejectsBeforeNative(TypeError, () => pool.openImage('ok', { snapshot: 5 } as never));
    await rejectsBeforeNative(RangeError, () => pool.openImage('ok', { snapshot: { id: -1 } }));
    await rejectsBeforeNative(TypeError, () => pool.openImage('ok', [] as never));
  });

  it('Image data path: offsets, lengths, buffers', async () => {
    for (const [v, t] of BAD_UINTS) {
      await rejectsBeforeNative(t, () => img.read(v as never, 1));
      await rejectsBeforeNative(t, () => img.read(0, v as never));
      await rejectsBeforeNative(t, () => img.write(Buffer.alloc(1), v as never));
      await rejectsBeforeNative(t, () => img.discard(v as never, 1));
      await rejectsBeforeNative(t, () => img.discard(0, v as never));
      await rejectsBeforeNative(t, () => img.writeZeroes(v as never, 1));
      await rejectsBeforeNative(t, () => img.writeZeroes(0, v as never));
      await rejectsBeforeNative(t, () => img.resize(v as never));
    }
    await rejectsBeforeNative(RangeError, () => img.read(0, 2 ** 31));
    for (const bad of ['str', 42, null, undefined, [1, 2], new ArrayBuffer(4)]) {
      await rejectsBeforeNative(TypeError, () => img.write(bad as never, 0));
    }
    await rejectsBeforeNative(TypeError, () => img.resize(1, { shrink: true } as never), /unknown option/);
    await rejectsBeforeNative(TypeError, () => img.resize(1, { allowShrink: 1 } as never));
  });

  it('Image metadata, features, snapshots, diff', async () => {
    for (const [v, t] of BAD_NAMES.filter(([v]) => typeof v !== 'string' || !/[/@]/.test(v))) {
      await rejectsBeforeNative(t, () => img.getMetadata(v as never));
      await rejectsBeforeNative(t, () => img.setMetadata(v as never, 'v'));
      await rejectsBeforeNative(t, () => img.removeMetadata(v as never));
    }
    await rejectsBeforeNative(TypeError, () => img.setMetadata('k', 5 as never));
    await rejectsBeforeNative(TypeError, () => img.setMetadata('k', 'a\0b'));
    await rejectsBeforeNative(RangeError, () => img.updateFeatures(['nope' as never], true));
    await rejectsBeforeNative(TypeError, () => img.updateFeatures(['fast-diff'], 'yes' as never));
    for (const [v, t] of BAD_NAMES) {
      await rejectsBeforeNative(t, () => img.createSnapshot(v as never));
      await rejectsBeforeNative(t, () => img.rollbackToSnapshot(v as never));
      await rejectsBeforeNative(t, () => img.protectSnapshot(v as never));
      await rejectsBeforeNative(t, () => img.unprotectSnapshot(v as never));
    }
    await rejectsBeforeNative(TypeError, () => img.removeSnapshot(5 as never));
    await rejectsBeforeNative(RangeError, () => img.removeSnapshot({ id: 1.5 }));
    await rejectsBeforeNative(TypeError, () => img.removeSnapshot('s', { force: 'y' } as never));
    await rejectsBeforeNative(TypeError, () => img.setSnapshot(undefined as never));
    await rejectsBeforeNative(TypeError, () => img.setSnapshot('a/b'));
    await rejectsBeforeNative(TypeError, () => img.listSnapshots({ all: true } as never), /unknown option/);
    await rejectsBeforeNative(TypeError, () => img.listSnapshots({ allNamespaces: 1 } as never));
    await rejectsBeforeNative(TypeError, () => img.diff({ from: 's' } as never), /unknown option/);
    await rejectsBeforeNative(TypeError, () => img.diff({ fromSnapshot: 'a@b' }));
    await rejectsBeforeNative(RangeError, () => img.diff({ offset: -1 }));
    await rejectsBeforeNative(RangeError, () => img.diff({ length: NaN }));
    await rejectsBeforeNative(RangeError, () => img.diff({ batchSize: 0 }));
    await rejectsBeforeNative(TypeError, () => img.diff({ wholeObject: 'yes' } as never));
    await rejectsBeforeNative(TypeError, () => img.diff({ signal: {} } as never));
  });

  it('closed handles: ERR_CLOSED without a native call', async () => {
    const p = await r.openPool(A.pool);
    const i = await p.openImage(imgs.names[0]);
    await i.close();
    const calls = spyNative();
    const calls2: (() => Promise<unknown>)[] = [() => i.read(0, 1), () => i.write(Buffer.alloc(1), 0), () => i.stat(), () => i.createSnapshot('s')];
    for (const call of calls2) {
      await expect(Promise.resolve().then(call)).rejects.toMatchObject({ code: 'ERR_CLOSED' });
    }
    expect(() => i.diff()).toThrow(expect.objectContaining({ code: 'ERR_CLOSED' }));
    expect(calls()).toBe(0);
    vi.restoreAllMocks();
    await p.close();
    await expect(p.openImage('x')).rejects.toMatchObject({ code: 'ERR_CLOSED' });
  });

  it('the native layer guards its own boundary too (wrong handle types, bad numbers)', async () => {
    expect(() => native.read({} as never, 0, Buffer.alloc(1), false)).toThrow(TypeError);
    expect(() => native.getFsid(img[kHandle] as never)).toThrow(/expected a native connection handle/);
    expect(() => native.read(img[kHandle], -1, Buffer.alloc(1), false)).toThrow(RangeError);
    expect(() => native.read(img[kHandle], 2 ** 53, Buffer.alloc(1), false)).toThrow(RangeError);
    expect(() => native.read(img[kHandle], 0, 4096 as never, false)).toThrow(TypeError);
    expect(() => native.write(img[kHandle], 'x' as never, 0)).toThrow(TypeError);
    expect(() => native.setMetadata(img[kHandle], 'a\0b', 'v')).toThrow(TypeError);
  });
});
