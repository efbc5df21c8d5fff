// RbdError and its one code table: no Ceph, no addon.
import { constants } from 'node:os';
import { describe, expect, it } from 'vitest';
import { RbdError, closedError, codedError, errnoCode, isRbdError } from '../../lib/core/errors.js';

describe('errno codes', () => {
  it("agree with Node's errno table for every Linux errno it names", () => {
    const byNumber = new Map<number, string[]>();
    for (const [name, n] of Object.entries(constants.errno)) byNumber.set(n, [...(byNumber.get(n) ?? []), name]);
    let checked = 0;
    for (const [n, names] of byNumber) {
      // Aliases (EWOULDBLOCK = EAGAIN, ENOTSUP = EOPNOTSUPP): ours is glibc's name, one of them.
      expect(names, `errno ${n}`).toContain(errnoCode(n));
      checked++;
    }
    expect(checked).toBeGreaterThan(70);
    expect([errnoCode(-2), errnoCode(2), errnoCode(95), errnoCode(11)]).toEqual(['ENOENT', 'ENOENT', 'EOPNOTSUPP', 'EAGAIN']);
  });
  it('an errno the table lacks keeps its number', () => {
    expect(errnoCode(-4095)).toBe('E4095');
  });
});

describe('RbdError', () => {
  it('codedError builds an RbdError with the code in the message and the fields set', () => {
    const e = codedError('ERR_WRONG_BASE', "target 'rbd/x@s1' is not a copy", { pool: 'rbd', image: 'x', snapshot: 's1' });
    expect(e).toBeInstanceOf(RbdError);
    expect(e).toBeInstanceOf(Error);
    expect(e.name).toBe('RbdError');
    expect(e.message).toBe("ERR_WRONG_BASE: target 'rbd/x@s1' is not a copy");
    expect({ code: e.code, pool: e.pool, image: e.image, snapshot: e.snapshot }).toEqual({ code: 'ERR_WRONG_BASE', pool: 'rbd', image: 'x', snapshot: 's1' });
    expect(Object.keys(e)).not.toContain('errno'); // unset fields stay absent
  });
  it('keeps a cause without copying it onto the error', () => {
    const cause = new Error('inner');
    const e = new RbdError('EIO', 'EIO: x', { cause, errno: -5 });
    expect(e.cause).toBe(cause);
    expect(e.errno).toBe(-5);
  });
  it('isRbdError checks the class and, optionally, the code', () => {
    expect(isRbdError(closedError("image 'rbd/x'"), 'ERR_CLOSED')).toBe(true);
    expect(isRbdError(closedError("image 'rbd/x'"), 'ENOENT')).toBe(false);
    expect(isRbdError(Object.assign(new Error('x'), { code: 'ENOENT' }))).toBe(false);
    expect(isRbdError(null)).toBe(false);
  });
});
