// Every error path named by the issue, asserting err.code / err.errno and the message context.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isRbdError, type Pool, type Rados } from '../../lib/index.js';
import { RbdError } from '../../lib/core/errors.js';
import { A, Images, MiB, connectTo } from '../support/helpers.js';

async function caught(p: Promise<unknown>): Promise<Error & Record<string, unknown>> {
  try {
    await p;
  } catch (e) {
    return e as Error & Record<string, unknown>;
  }
  throw new Error('expected a rejection');
}

describe('error codes', () => {
  let r: Rados;
  let pool: Pool;
  const imgs = new Images(A);
  let name: string;
  beforeAll(async () => {
    r = await connectTo(A);
    pool = await r.openPool(A.pool);
    name = await imgs.create(pool, 'err', 1 * MiB);
  });
  afterAll(async () => {
    await r?.close();
    await imgs.purge();
  });

  it('missing pool → ENOENT', async () => {
    const e = await caught(r.openPool('missing-pool-e'));
    expect(e).toMatchObject({ code: 'ENOENT', errno: -2, pool: 'missing-pool-e' });
    expect(isRbdError(e, 'ENOENT')).toBe(true);
  });

  it('missing image → ENOENT (open, remove, rename), message names operation, pool and image', async () => {
    const e = await caught(pool.openImage('missing-image-e'));
    expect(e).toMatchObject({ code: 'ENOENT', errno: -2, operation: 'open image', pool: A.pool, image: 'missing-image-e' });
    expect(e.message).toContain('open image');
    expect(e.message).toContain(`${A.pool}/missing-image-e`);
    expect(await caught(pool.removeImage('missing-image-e'))).toMatchObject({ code: 'ENOENT' });
    expect(await caught(pool.renameImage('missing-image-e', 'x-e'))).toMatchObject({ code: 'ENOENT' });
  });

  it('missing snapshot → ENOENT (open at, set, remove, rollback, protect, diff from), message names the snapshot', async () => {
    const e = await caught(pool.openImage(name, { snapshot: 'nosnap' }));
    expect(e).toMatchObject({ code: 'ENOENT', snapshot: 'nosnap', image: name });
    expect(e.message).toContain(`${A.pool}/${name}@nosnap`);
    const img = await pool.openImage(name);
    try {
      expect(await caught(img.setSnapshot('nosnap'))).toMatchObject({ code: 'ENOENT', snapshot: 'nosnap' });
      expect(await caught(img.removeSnapshot('nosnap'))).toMatchObject({ code: 'ENOENT' });
      expect(await caught(img.rollbackToSnapshot('nosnap'))).toMatchObject({ code: 'ENOENT' });
      expect(await caught(img.protectSnapshot('nosnap'))).toMatchObject({ code: 'ENOENT' });
      expect(await caught(pool.openImage(name, { snapshot: { id: 999999 } }))).toMatchObject({ code: 'ENOENT' });
      const d = await caught((async () => {
        for await (const _ of img.diff({ fromSnapshot: 'nosnap' })) { /* consume */ }
      })());
      expect(d).toMatchObject({ code: 'ENOENT' });
      expect(d.message).toContain('nosnap');
    } finally {
      await img.close();
    }
  });

  it('create existing → EEXIST (image and snapshot)', async () => {
    expect(await caught(pool.createImage(name, 1 * MiB))).toMatchObject({ code: 'EEXIST', errno: -17, image: name });
    const img = await pool.openImage(name);
    try {
      await img.createSnapshot('dup');
      expect(await caught(img.createSnapshot('dup'))).toMatchObject({ code: 'EEXIST', snapshot: 'dup' });
      await img.removeSnapshot('dup');
    } finally {
      await img.close();
    }
  });

  it('write to a read-only image → EROFS (write, discard, writeZeroes, resize, snapshot create)', async () => {
    const ro = await pool.openImage(name, { readOnly: true });
    try {
      expect(await caught(ro.write(Buffer.alloc(512), 0))).toMatchObject({ code: 'EROFS', errno: -30, operation: 'write' });
      expect(await caught(ro.discard(0, 4096))).toMatchObject({ code: 'EROFS' });
      expect(await caught(ro.writeZeroes(0, 4096))).toMatchObject({ code: 'EROFS' });
      expect(await caught(ro.resize(2 * MiB))).toMatchObject({ code: 'EROFS' });
      expect(await caught(ro.createSnapshot('x'))).toMatchObject({ code: 'EROFS' });
    } finally {
      await ro.close();
    }
  });

  it('write to a snapshot-opened image → EROFS; also after setSnapshot on a writable image', async () => {
    const img = await pool.openImage(name);
    await img.createSnapshot('ro');
    const at = await pool.openImage(name, { snapshot: 'ro' });
    try {
      const e = await caught(at.write(Buffer.alloc(512), 0));
      expect(e).toMatchObject({ code: 'EROFS', snapshot: 'ro' });
      expect(e.message).toContain(`@ro`);
      await img.setSnapshot('ro');
      expect(await caught(img.write(Buffer.alloc(512), 0))).toMatchObject({ code: 'EROFS' });
      await img.setSnapshot(null);
      expect(await img.write(Buffer.alloc(512), 0)).toBe(512);
      await img.removeSnapshot('ro');
    } finally {
      await at.close();
      await img.close();
    }
  });

  it('remove image with snapshots → ENOTEMPTY; open elsewhere → EBUSY', async () => {
    const n = await imgs.create(pool, 'err-rm', 1 * MiB);
    const img = await pool.openImage(n);
    await img.createSnapshot('keep');
    await img.close();
    expect(await caught(pool.removeImage(n))).toMatchObject({ code: 'ENOTEMPTY', errno: -39, image: n });
    const img2 = await pool.openImage(n);
    await img2.removeSnapshot('keep');
    // Still open by this client (a watcher): librbd refuses.
    expect(await caught(pool.removeImage(n))).toMatchObject({ code: 'EBUSY' });
    await img2.close();
    await pool.removeImage(n);
  });

  it('use after close → ERR_CLOSED for every image, pool and connection call', async () => {
    const r2 = await connectTo(A);
    const p2 = await r2.openPool(A.pool);
    const img = await p2.openImage(name);
    await img.close();
    const calls: (() => Promise<unknown>)[] = [
      () => img.stat(), () => img.read(0, 1), () => img.write(Buffer.alloc(1), 0), () => img.discard(0, 1),
      () => img.writeZeroes(0, 1), () => img.flush(), () => img.resize(1), () => img.getMetadata('k'),
      () => img.setMetadata('k', 'v'), () => img.listMetadata(), () => img.removeMetadata('k'),
      () => img.updateFeatures(['fast-diff'], false), () => img.createSnapshot('s'), () => img.listSnapshots(),
      () => img.removeSnapshot('s'), () => img.rollbackToSnapshot('s'), () => img.protectSnapshot('s'),
      () => img.unprotectSnapshot('s'), () => img.setSnapshot(null),
      async () => { for await (const _ of img.diff()) { /* */ } },
    ];
    for (const call of calls) {
      const e = await caught(Promise.resolve().then(call));
      expect(e.code).toBe('ERR_CLOSED');
      expect(e).toBeInstanceOf(RbdError);
      expect(e.message).toContain(name);
    }
    await img.close(); // idempotent
    await r2.close();
    const later: (() => Promise<unknown>)[] = [() => p2.listImages(), () => p2.createImage('x', 1), () => r2.listPools(), () => r2.fsid()];
    for (const call of later) {
      expect((await caught(Promise.resolve().then(call))).code).toBe('ERR_CLOSED');
    }
  });

  it('read past the end → EINVAL; a read crossing the end returns the bytes up to it', async () => {
    const img = await pool.openImage(name);
    try {
      const e = await caught(img.read(1 * MiB, 1));
      expect(e).toMatchObject({ code: 'EINVAL', errno: -22, operation: 'read', image: name });
      expect((await img.read(1 * MiB - 10, 100)).length).toBe(10);
    } finally {
      await img.close();
    }
  });

  it('errors are RbdErrors (so Errors) with a stack, and JSON-serialisable fields', async () => {
    const e = await caught(pool.openImage('missing-image-e'));
    expect(e).toBeInstanceOf(Error);
    expect(e).toBeInstanceOf(RbdError);
    expect(e.message).toBe(`ENOENT: open image '${A.pool}/missing-image-e' failed: No such file or directory`);
    expect(typeof e.stack).toBe('string');
    expect(JSON.parse(JSON.stringify(e))).toMatchObject({ code: 'ENOENT', errno: -2 });
  });
});
