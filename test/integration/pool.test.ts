import { describe, expect, it } from 'vitest';
import type { Pool } from '../../lib/index.js';
import { cephCli, rbdCli } from '../support/clusters.js';
import { A, MiB, usePool } from '../support/helpers.js';

describe('Pool', () => {
  const fx = usePool(A);

  it('createImage with default options: visible to `rbd info` with the given size', async () => {
    const name = await fx.images.create(fx.pool, 'pool-def', 8 * MiB);
    const info = JSON.parse(await rbdCli(A, ['info', '--format', 'json', `${A.pool}/${name}`]));
    expect(info.size).toBe(8 * MiB);
    expect(info.order).toBe(22);
    expect(await fx.pool.listImages()).toContain(name);
  });

  it('createImage with features and order; `rbd info` agrees', async () => {
    const name = await fx.images.create(fx.pool, 'pool-feat', 4 * MiB, { features: ['layering', 'exclusive-lock'], order: 20 });
    const info = JSON.parse(await rbdCli(A, ['info', '--format', 'json', `${A.pool}/${name}`]));
    expect(info.order).toBe(20);
    expect(info.object_size).toBe(1 * MiB);
    expect([...info.features].sort()).toEqual(['exclusive-lock', 'layering']);
  });

  it('createImage with dataPool: `rbd info` names the data pool', async () => {
    const dataPool = `data-${process.pid}`;
    await cephCli(A, ['osd', 'pool', 'create', dataPool, '8']);
    try {
      await rbdCli(A, ['pool', 'init', dataPool]);
      const name = await fx.images.create(fx.pool, 'pool-dp', 4 * MiB, { dataPool });
      const info = JSON.parse(await rbdCli(A, ['info', '--format', 'json', `${A.pool}/${name}`]));
      expect(info.data_pool).toBe(dataPool);
      expect(info.features).toContain('data-pool');
      const img = await fx.pool.openImage(name);
      const st = await img.stat();
      expect(st.features).toContain('data-pool');
      expect(st.dataPoolId).not.toBe(fx.pool.id);
      await img.close();
      await fx.pool.removeImage(name);
    } finally {
      await cephCli(A, ['osd', 'pool', 'rm', dataPool, dataPool, '--yes-i-really-really-mean-it']);
    }
  });

  it('createImage with stripeUnit/stripeCount: `rbd info` agrees; stat reports them', async () => {
    const name = await fx.images.create(fx.pool, 'pool-stripe', 8 * MiB, { stripeUnit: 64 * 1024, stripeCount: 4 });
    const info = JSON.parse(await rbdCli(A, ['info', '--format', 'json', `${A.pool}/${name}`]));
    expect(info.stripe_unit).toBe(64 * 1024);
    expect(info.stripe_count).toBe(4);
    const img = await fx.pool.openImage(name);
    const st = await img.stat();
    expect([st.stripeUnit, st.stripeCount]).toEqual([64 * 1024, 4]);
    expect(st.features).toContain('striping');
    await img.close();
  });

  it('listImages lists images created with the CLI, sorted', async () => {
    const n1 = fx.images.name('pool-ls-b');
    const n2 = fx.images.name('pool-ls-a');
    await rbdCli(A, ['create', '--size', '1M', `${A.pool}/${n1}`]);
    await rbdCli(A, ['create', '--size', '1M', `${A.pool}/${n2}`]);
    const list = await fx.pool.listImages();
    expect(list).toEqual(expect.arrayContaining([n1, n2]));
    expect(list).toEqual([...list].sort());
    const cli = JSON.parse(await rbdCli(A, ['ls', '--format', 'json', A.pool])) as string[];
    expect([...list].sort()).toEqual([...cli].sort());
    const specs = await fx.pool.listImageSpecs();
    const s1 = specs.find((s) => s.name === n1)!;
    const info = JSON.parse(await rbdCli(A, ['info', '--format', 'json', `${A.pool}/${n1}`]));
    expect(s1.id).toBe(info.id);
  });

  it('renameImage: old name gone, new name present (CLI oracle)', async () => {
    const from = await fx.images.create(fx.pool, 'pool-ren', 1 * MiB);
    const to = fx.images.name('pool-ren-to');
    await fx.pool.renameImage(from, to);
    const cli = JSON.parse(await rbdCli(A, ['ls', '--format', 'json', A.pool])) as string[];
    expect(cli).toContain(to);
    expect(cli).not.toContain(from);
  });

  it('removeImage: gone for the CLI; removing again → ENOENT', async () => {
    const name = await fx.images.create(fx.pool, 'pool-rm', 1 * MiB);
    await fx.pool.removeImage(name);
    const cli = JSON.parse(await rbdCli(A, ['ls', '--format', 'json', A.pool])) as string[];
    expect(cli).not.toContain(name);
    await expect(fx.pool.removeImage(name)).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('images in a namespace are separate from the default namespace', async () => {
    const ns = `ns${process.pid}`;
    await rbdCli(A, ['namespace', 'create', '--pool', A.pool, '--namespace', ns]);
    const p = await fx.rados.openPool(A.pool, { namespace: ns });
    try {
      const name = 'in-ns';
      await p.createImage(name, 1 * MiB);
      expect(await p.listImages()).toEqual([name]);
      expect(await fx.pool.listImages()).not.toContain(name);
      const cli = JSON.parse(await rbdCli(A, ['ls', '--format', 'json', `${A.pool}/${ns}`]));
      expect(cli).toEqual([name]);
      await p.removeImage(name);
    } finally {
      await p.close();
      await rbdCli(A, ['namespace', 'remove', '--pool', A.pool, '--namespace', ns]).catch(() => {});
    }
  });

  it('close: closes its images; later calls reject with ERR_CLOSED', async () => {
    const name = await fx.images.create(fx.pool, 'pool-close', 1 * MiB);
    const p = await fx.rados.openPool(A.pool);
    const img = await p.openImage(name);
    await p.close();
    expect(img.closed).toBe(true);
    await expect(p.listImages()).rejects.toMatchObject({ code: 'ERR_CLOSED' });
    await expect(p.openImage(name)).rejects.toMatchObject({ code: 'ERR_CLOSED' });
    await expect(img.read(0, 10)).rejects.toMatchObject({ code: 'ERR_CLOSED' });
    expect(() => p.id).toThrow(expect.objectContaining({ code: 'ERR_CLOSED' }));
  });
});
