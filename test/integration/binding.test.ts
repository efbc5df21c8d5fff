// The native boundary: lib/binding declares exactly what the addon exports, and every error the
// addon raises is an RbdError whose code comes from lib/core/errors.ts.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NATIVE_EXPORTS, native } from '../../lib/binding/index.js';
import { RbdError, errnoCode, isRbdError } from '../../lib/core/errors.js';
import { kHandle } from '../../lib/core/internal.js';
import type { Pool, Rados } from '../../lib/index.js';
import { A, connectTo } from '../support/helpers.js';

describe('native binding', () => {
  it('the declared names are exactly the addon exports, each declared once', () => {
    const declared = Object.values(NATIVE_EXPORTS).flat();
    expect(new Set(declared).size, 'a name declared in two lib/binding files').toBe(declared.length);
    expect([...declared].sort()).toEqual(Object.keys(native).sort());
  });

  it('every export but librbdVersion is a function', () => {
    for (const name of Object.keys(native)) {
      expect(typeof (native as unknown as Record<string, unknown>)[name], name).toBe(name === 'librbdVersion' ? 'string' : 'function');
    }
    expect(native.librbdVersion).toMatch(/^\d+\.\d+\.\d+$/);
  });

  it('errno names come from the one table in lib/core/errors.ts (glibc names)', () => {
    expect(errnoCode(-2)).toBe('ENOENT');
    expect(errnoCode(95)).toBe('EOPNOTSUPP');
    expect(errnoCode(-11)).toBe('EAGAIN');
    expect(errnoCode(-110)).toBe('ETIMEDOUT');
    expect(errnoCode(-4095)).toBe('E4095');
  });

  it('makeError builds the same RbdError native failures reject with', () => {
    const e = native.makeError(-2, 'open image', 'rbd', 'x');
    expect(e).toBeInstanceOf(RbdError);
    expect(e.message).toBe("ENOENT: open image 'rbd/x' failed: No such file or directory");
    expect(e).toMatchObject({ code: 'ENOENT', errno: -2, operation: 'open image', pool: 'rbd', image: 'x' });
  });

  describe('against a cluster', () => {
    let r: Rados;
    let pool: Pool;
    beforeAll(async () => {
      r = await connectTo(A);
      pool = await r.openPool(A.pool);
    });
    afterAll(async () => {
      await r?.close();
    });

    it('a native failure is an RbdError with the errno name as code and a negative errno', async () => {
      const e = await native.openImage(pool[kHandle], 'missing-image-binding', {}).catch((x: unknown) => x);
      expect(e).toBeInstanceOf(RbdError);
      expect(e).toBeInstanceOf(Error);
      expect(isRbdError(e, 'ENOENT')).toBe(true);
      expect(e).toMatchObject({ code: 'ENOENT', errno: -2, operation: 'open image', pool: A.pool, image: 'missing-image-binding' });
      expect((e as Error).message).toBe(`ENOENT: open image '${A.pool}/missing-image-binding' failed: No such file or directory`);
    });

    it('a closed native handle throws an RbdError with code ERR_CLOSED', async () => {
      const h = await native.openPool(r[kHandle], A.pool);
      await native.closePool(h);
      let e: unknown;
      try {
        native.getPoolId(h);
      } catch (x) {
        e = x;
      }
      expect(e).toBeInstanceOf(RbdError);
      expect(e).toMatchObject({ code: 'ERR_CLOSED', message: 'pool is closed' });
    });
  });
});
