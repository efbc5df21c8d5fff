// `await using` closes Rados, Pool and Image (Symbol.asyncDispose), innermost first.
import { afterAll, describe, expect, it } from 'vitest';
import { A, Images, MiB, connectTo } from '../support/helpers.js';
import type { Image, Pool, Rados } from '../../lib/index.js';

const images = new Images(A);
afterAll(() => images.purge());

describe('Symbol.asyncDispose', () => {
  it('closes image, pool and connection at the end of their block', async () => {
    let rados: Rados, pool: Pool, image: Image;
    {
      await using r = await connectTo(A);
      await using p = await r.openPool(A.pool);
      const name = await images.create(p, 'dispose', 4 * MiB);
      await using i = await p.openImage(name);
      await i.write(Buffer.alloc(4096, 7), 0);
      [rados, pool, image] = [r, p, i];
      expect([r.closed, p.closed, i.closed]).toEqual([false, false, false]);
    }
    expect([rados.closed, pool.closed, image.closed]).toEqual([true, true, true]);
    await expect(image.read(0, 1)).rejects.toMatchObject({ code: 'ERR_CLOSED' });
  });

  it('disposes when the block throws', async () => {
    let rados: Rados | undefined;
    await expect((async () => {
      await using r = await connectTo(A);
      rados = r;
      throw new Error('boom');
    })()).rejects.toThrow('boom');
    expect(rados!.closed).toBe(true);
  });
});
