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

describe('mgr module errors', () => {
  it("a mgr answering \"No handler found\" to a schedule command gives ERR_MGR_MODULE_UNAVAILABLE naming rbd_support", async () => {
    const { addSnapshotSchedule, listSnapshotSchedules } = await import('../../lib/mirror/schedule.js');
    const noHandler = (cmd: { prefix: string }) => {
      const status = `No handler found for '${cmd.prefix}'`;
      return Promise.reject(codedError('EINVAL', `mgr command '${cmd.prefix}' failed: ${status}`, { errno: -22, status }));
    };
    const rados = { command: (_t: string, c: { prefix: string }) => noHandler(c), commandJson: (_t: string, c: { prefix: string }) => noHandler(c) };
    for (const call of [
      () => addSnapshotSchedule(rados as never, { pool: 'p', interval: '6h' }),
      () => listSnapshotSchedules(rados as never, { pool: 'p' }),
    ]) {
      const e = await call().catch((x: unknown) => x);
      expect(isRbdError(e, 'ERR_MGR_MODULE_UNAVAILABLE')).toBe(true);
      expect((e as Error).message).toMatch(/^ERR_MGR_MODULE_UNAVAILABLE: mgr command 'rbd mirror snapshot schedule (add|list)' failed: the mgr's rbd_support module is not running/);
      expect(e).toMatchObject({ errno: -22, status: expect.stringMatching(/No handler found/) });
    }
    // Any other EINVAL (a bad pool, say) stays as it was.
    const other = { command: () => Promise.reject(codedError('EINVAL', 'x', { errno: -22, status: 'pool p does not exist' })) };
    await expect(addSnapshotSchedule(other as never, { pool: 'p', interval: '6h' })).rejects.toMatchObject({ code: 'EINVAL' });
  });
});
