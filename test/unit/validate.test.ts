// Argument checks and feature tables: pure functions, no Ceph, no addon.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  MAX_IO_BYTES, checkBool, checkFromSnapId, checkImageName, checkName, checkOptions, checkSignal, checkSnapName, checkUint, describe as describeValue,
} from '../../lib/core/validate.js';
import { FEATURE_BITS, featureBits, featureNames, lockModeName } from '../../lib/core/features.js';

type Ctor = typeof TypeError | typeof RangeError;
const thrown = (f: () => unknown): unknown => { try { f(); } catch (e) { return e; } return undefined; };

describe('checkUint', () => {
  const bad: [unknown, Ctor][] = [
    ['1', TypeError], [null, TypeError], [undefined, TypeError], [1n, TypeError], [{}, TypeError],
    [-1, RangeError], [1.5, RangeError], [NaN, RangeError], [Infinity, RangeError], [2 ** 53, RangeError], [2 ** 64, RangeError],
  ];
  it.each(bad)('rejects %s with the right class', (v, cls) => {
    const e = thrown(() => checkUint(v, 'offset'));
    expect(e).toBeInstanceOf(cls);
    expect((e as Error).message).toMatch(/^offset /);
  });
  it('accepts every safe non-negative integer, bounded by min and max', () => {
    fc.assert(fc.property(fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }), (n) => checkUint(n, 'n') === n));
    expect(thrown(() => checkUint(4, 'n', { max: 3 }))).toBeInstanceOf(RangeError);
    expect(thrown(() => checkUint(0, 'n', { min: 1 }))).toBeInstanceOf(RangeError);
    expect(checkUint(3, 'n', { min: 3, max: 3 })).toBe(3);
  });
});

describe('names', () => {
  const bad: [unknown, Ctor][] = [
    [42, TypeError], [null, TypeError], [undefined, TypeError], [['a'], TypeError],
    ['', RangeError], ['x'.repeat(1025), RangeError], ['a\0b', TypeError],
  ];
  it.each(bad)('checkName rejects %s', (v, cls) => expect(thrown(() => checkName(v, 'pool name'))).toBeInstanceOf(cls));
  it.each(['a/b', 'a@b'])('image and snapshot names reject %s; plain names accept it', (v) => {
    expect(thrown(() => checkImageName(v))).toBeInstanceOf(TypeError);
    expect(thrown(() => checkSnapName(v))).toBeInstanceOf(TypeError);
    expect(checkName(v, 'metadata key')).toBe(v);
  });
  it('length is counted in UTF-8 bytes', () => {
    expect(checkName('é'.repeat(512), 'n')).toHaveLength(512); // 1024 bytes
    expect(thrown(() => checkName(`${'é'.repeat(512)}a`, 'n'))).toBeInstanceOf(RangeError);
  });
});

describe('option objects, booleans, signals', () => {
  it('checkOptions rejects non-objects and unknown keys, naming the allowed ones', () => {
    for (const v of [null, 1, 'x', []]) expect(thrown(() => checkOptions(v, 'opts', ['a']))).toBeInstanceOf(TypeError);
    expect((thrown(() => checkOptions({ b: 1 }, 'opts', ['a'])) as Error).message).toBe("opts: unknown option 'b' (allowed: a)");
    expect(checkOptions(undefined, 'opts', ['a'])).toEqual({});
    expect(checkOptions({ a: 1 }, 'opts', ['a'])).toEqual({ a: 1 });
  });
  it('checkBool and checkSignal', () => {
    expect(checkBool(undefined, 'b')).toBeUndefined();
    expect(checkBool(false, 'b')).toBe(false);
    expect(thrown(() => checkBool(1, 'b'))).toBeInstanceOf(TypeError);
    const s = new AbortController().signal;
    expect(checkSignal(s)).toBe(s);
    expect(thrown(() => checkSignal({ aborted: false }))).toBeInstanceOf(TypeError);
  });
  it('describe names the type without echoing values', () => {
    expect([null, [], NaN, 5, 'secret', {}].map(describeValue)).toEqual(['null', 'array', 'NaN', 'number 5', 'string', 'object']);
    expect(MAX_IO_BYTES).toBe(2 ** 30);
  });
});

describe('checkFromSnapId', () => {
  it('takes a number or bigint snapshot id and returns a bigint; absent is undefined', () => {
    expect(checkFromSnapId(undefined, undefined)).toBeUndefined();
    expect(checkFromSnapId(0, undefined)).toBe(0n);
    expect(checkFromSnapId(42, undefined)).toBe(42n);
    expect(checkFromSnapId(2n ** 64n - 1n, undefined)).toBe(2n ** 64n - 1n);
    expect(checkFromSnapId(Number.MAX_SAFE_INTEGER, undefined)).toBe(BigInt(Number.MAX_SAFE_INTEGER));
  });
  const bad: [unknown, Ctor][] = [
    ['1', TypeError], [null, TypeError], [1.5, TypeError], [NaN, TypeError], [Infinity, TypeError], [{ id: 1 }, TypeError],
    [-1, RangeError], [-1n, RangeError], [2n ** 64n, RangeError], [2 ** 53, RangeError],
  ];
  it.each(bad)('rejects %s with the right class', (v, cls) => {
    const e = thrown(() => checkFromSnapId(v, undefined));
    expect(e).toBeInstanceOf(cls);
    expect((e as Error).message).toMatch(/^fromSnapId /);
  });
  it('excludes fromSnapshot', () => {
    const e = thrown(() => checkFromSnapId(1, 's1'));
    expect(e).toBeInstanceOf(TypeError);
    expect((e as Error).message).toBe('pass either fromSnapshot or fromSnapId, not both');
  });
});

describe('features', () => {
  it('names and bits round-trip for every subset', () => {
    const names = Object.keys(FEATURE_BITS) as (keyof typeof FEATURE_BITS)[];
    fc.assert(fc.property(fc.subarray(names), (sub) => {
      expect(new Set(featureNames(featureBits(sub)))).toEqual(new Set(sub));
    }));
  });
  it('unknown names are RangeErrors, non-arrays TypeErrors', () => {
    expect(thrown(() => featureBits(['layering', 'nope']))).toBeInstanceOf(RangeError);
    expect(thrown(() => featureBits('layering' as never))).toBeInstanceOf(TypeError);
  });
});

describe('lock mode names', () => {
  it('names librbd 0–2 and calls anything else unknown (never another mode)', () => {
    expect([0, 1, 2].map(lockModeName)).toEqual(['exclusive', 'shared', 'exclusive-transient']);
    for (const n of [3, 99, -1, 1.5, NaN]) expect(lockModeName(n)).toBe('unknown');
  });
});
