import { describe, expect, it } from 'vitest';
import { rbdCli, rbdExportMd5 } from '../support/clusters.js';
import { A, KiB, MiB, connectTo, md5, rnd, usePool } from '../support/helpers.js';

describe('Image', () => {
  const fx = usePool(A);

  const info = async (name: string) => JSON.parse(await rbdCli(A, ['info', '--format', 'json', `${A.pool}/${name}`]));

  it('stat agrees with `rbd info`', async () => {
    const name = await fx.images.create(fx.pool, 'img-stat', 12 * MiB, { order: 21 });
    const img = await fx.pool.openImage(name);
    const st = await img.stat();
    const i = await info(name);
    expect(st.size).toBe(i.size);
    expect(st.objectSize).toBe(i.object_size);
    expect(st.objectCount).toBe(i.objects);
    expect(st.objectCount).toBe(6);
    expect(st.order).toBe(21);
    expect(st.id).toBe(i.id);
    expect(st.blockNamePrefix).toBe(i.block_name_prefix);
    expect([...st.features].sort()).toEqual([...i.features].sort());
    expect(st.flags).toEqual({ objectMapInvalid: false, fastDiffInvalid: false });
    expect(i.flags).toEqual([]);
    await img.close();
  });

  it('write/read round-trip; rbd export md5 matches the data written', async () => {
    const name = await fx.images.create(fx.pool, 'img-rw', 8 * MiB);
    const img = await fx.pool.openImage(name);
    const expected = Buffer.alloc(8 * MiB);
    // Unaligned, sparse and object-crossing writes.
    const writes: [number, number][] = [[0, 4096], [12345, 777], [4 * MiB - 1000, 3000], [7 * MiB, 1 * MiB]];
    for (const [off, len] of writes) {
      const data = rnd(len);
      data.copy(expected, off);
      expect(await img.write(data, off)).toBe(len);
    }
    // Uint8Array input also works.
    const u8 = new Uint8Array(rnd(100));
    Buffer.from(u8).copy(expected, 5 * MiB);
    expect(await img.write(u8, 5 * MiB)).toBe(100);
    await img.flush();
    expect(md5(await img.read(0, 8 * MiB))).toBe(md5(expected));
    expect(md5(await img.read(12000, 2000))).toBe(md5(expected.subarray(12000, 14000)));
    expect(await rbdExportMd5(A, name)).toBe(md5(expected));
    await img.close();
  });

  it('reads data written with the CLI (import)', async () => {
    const name = fx.images.name('img-imp');
    const data = rnd(3 * MiB + 5);
    await rbdCli(A, ['--no-progress', 'import', '-', `${A.pool}/${name}`], { input: data });
    const img = await fx.pool.openImage(name, { readOnly: true });
    expect((await img.stat()).size).toBe(data.length);
    expect(md5(await img.read(0, data.length))).toBe(md5(data));
    await img.close();
  });

  it('read crossing the end returns the bytes up to it; read at the end → EINVAL; zero-length read', async () => {
    const name = await fx.images.create(fx.pool, 'img-end', 1 * MiB);
    const img = await fx.pool.openImage(name);
    const tail = rnd(100);
    await img.write(tail, 1 * MiB - 100);
    const b = await img.read(1 * MiB - 100, 4096);
    expect(b.length).toBe(100);
    expect(b.equals(tail)).toBe(true);
    await expect(img.read(1 * MiB, 10)).rejects.toMatchObject({ code: 'EINVAL', errno: -22 });
    await expect(img.read(5 * MiB, 10)).rejects.toMatchObject({ code: 'EINVAL' });
    expect((await img.read(0, 0)).length).toBe(0);
    expect(await img.write(Buffer.alloc(0), 0)).toBe(0);
    // A write crossing the end keeps (and reports) only the bytes up to it.
    expect(await img.write(Buffer.alloc(300, 9), 1 * MiB - 100)).toBe(100);
    expect((await img.read(1 * MiB - 100, 100)).equals(Buffer.alloc(100, 9))).toBe(true);
    await expect(img.write(Buffer.alloc(10), 1 * MiB)).rejects.toMatchObject({ code: 'EINVAL' });
    expect((await rbdCli(A, ['info', '--format', 'json', `${A.pool}/${name}`])).includes(`"size":${1 * MiB}`)).toBe(true);
    await img.discard(0, 0);
    await img.writeZeroes(0, 0);
    await img.close();
  });

  it('discard and writeZeroes read back as zeros; rbd export agrees', async () => {
    const name = await fx.images.create(fx.pool, 'img-zero', 8 * MiB);
    const img = await fx.pool.openImage(name);
    const expected = rnd(8 * MiB);
    await img.write(expected, 0);
    await img.discard(0, 4 * MiB); // whole object: deallocated
    expected.fill(0, 0, 4 * MiB);
    await img.writeZeroes(5 * MiB + 123, 10_000); // unaligned: exact zeroing
    expected.fill(0, 5 * MiB + 123, 5 * MiB + 123 + 10_000);
    await img.flush();
    expect(md5(await img.read(0, 8 * MiB))).toBe(md5(expected));
    expect(await rbdExportMd5(A, name)).toBe(md5(expected));
    const du = JSON.parse(await rbdCli(A, ['du', '--format', 'json', `${A.pool}/${name}`]));
    expect(du.images[0].used_size).toBe(4 * MiB);
    await img.close();
  });

  it('resize: grow, shrink needs allowShrink (EINVAL), shrink with it', async () => {
    const name = await fx.images.create(fx.pool, 'img-resize', 4 * MiB);
    const img = await fx.pool.openImage(name);
    await img.write(Buffer.alloc(4096, 7), 2 * MiB);
    await img.resize(16 * MiB);
    expect((await img.stat()).size).toBe(16 * MiB);
    expect((await info(name)).size).toBe(16 * MiB);
    await expect(img.resize(1 * MiB)).rejects.toMatchObject({ code: 'EINVAL' });
    expect((await img.stat()).size).toBe(16 * MiB);
    await img.resize(3 * MiB, { allowShrink: true });
    expect((await info(name)).size).toBe(3 * MiB);
    expect(await img.size()).toBe(3 * MiB);
    const b = await img.read(2 * MiB, 4096);
    expect(b.equals(Buffer.alloc(4096, 7))).toBe(true);
    await img.close();
  });

  it('metadata: set/get/list/remove, agreeing with `rbd image-meta`', async () => {
    const name = await fx.images.create(fx.pool, 'img-meta', 1 * MiB);
    const img = await fx.pool.openImage(name);
    await img.setMetadata('k1', 'v1');
    await img.setMetadata('k2', 'a longer value with spaces and ünïcödé');
    expect(await img.getMetadata('k1')).toBe('v1');
    expect(await img.getMetadata('missing')).toBeUndefined();
    expect(await img.listMetadata()).toEqual({ k1: 'v1', k2: 'a longer value with spaces and ünïcödé' });
    expect((await rbdCli(A, ['image-meta', 'get', `${A.pool}/${name}`, 'k2'])).trim()).toBe(
      'a longer value with spaces and ünïcödé',
    );
    await rbdCli(A, ['image-meta', 'set', `${A.pool}/${name}`, 'k3', 'from-cli']);
    expect(await img.getMetadata('k3')).toBe('from-cli');
    await img.removeMetadata('k1');
    await expect(img.removeMetadata('k1')).rejects.toMatchObject({ code: 'ENOENT' });
    const cli = JSON.parse(await rbdCli(A, ['image-meta', 'list', '--format', 'json', `${A.pool}/${name}`]));
    expect(cli).toEqual({ k2: 'a longer value with spaces and ünïcödé', k3: 'from-cli' });
    // Many keys (pages of the native listing).
    for (let i = 0; i < 300; i += 50) {
      await Promise.all(Array.from({ length: 50 }, (_, j) => img.setMetadata(`m${String(i + j).padStart(3, '0')}`, `v${i + j}`)));
    }
    const all = await img.listMetadata();
    expect(Object.keys(all)).toHaveLength(302);
    expect(all.m299).toBe('v299');
    await img.close();
  });

  it('exclusive lock owners agree with `rbd lock ls`; breakLock blocklists the owner, and the lock can be taken at once', async () => {
    const name = await fx.images.create(fx.pool, 'img-lock', 1 * MiB);
    const mine = await fx.pool.openImage(name);
    const other = await connectTo(A);
    try {
      expect(await mine.getLockOwners()).toBeUndefined();
      const pool2 = await other.openPool(A.pool);
      const held = await pool2.openImage(name);
      await held.write(Buffer.alloc(4096, 1), 0); // takes the exclusive lock
      const owners = await mine.getLockOwners();
      const cli = JSON.parse(await rbdCli(A, ['lock', 'ls', '--format', 'json', `${A.pool}/${name}`])) as { address: string }[];
      expect(cli).toHaveLength(1);
      expect(owners).toEqual({ mode: 'exclusive', owners: [cli[0].address] });
      // Both handles watch the header; the owner's address is among the watchers (so it is alive).
      const status = JSON.parse(await rbdCli(A, ['status', '--format', 'json', `${A.pool}/${name}`])) as { watchers: { address: string; client: number; cookie: number }[] };
      const watchers = await mine.listWatchers();
      expect(watchers.map((w) => [w.address, w.id]).sort()).toEqual(status.watchers.map((w) => [w.address, w.client]).sort());
      expect(watchers.map((w) => w.id).sort()).toEqual([mine.pool.rados.instanceId(), other.instanceId()].sort());
      expect(watchers.map((w) => w.address)).toContain(owners!.owners[0]);
      expect(watchers.every((w) => /^\d+$/.test(w.cookie))).toBe(true);

      // Not the owner: librbd refuses (the lock may have changed hands since it was read).
      await expect(mine.breakLock('127.0.0.1:0/1')).rejects.toMatchObject({ code: 'EBUSY' });
      await mine.breakLock(owners!.owners[0]);
      expect(await mine.getLockOwners()).toBeUndefined();
      // The broken owner was blocklisted: it cannot write on (EBLOCKLISTED is ESHUTDOWN).
      await expect(held.write(Buffer.alloc(4096, 2), 4096)).rejects.toMatchObject({ code: 'ESHUTDOWN' });
      await mine.write(Buffer.alloc(4096, 3), 0);
      expect((await mine.getLockOwners())?.mode).toBe('exclusive');
      expect((await mine.read(0, 4096)).every((b) => b === 3)).toBe(true);
      await held.close().catch(() => {});
    } finally {
      await other.close().catch(() => {});
      await mine.close();
    }
  });

  it('lock owners need the exclusive-lock feature (EINVAL); bad breakLock arguments are TypeErrors; watchers are listed without it', async () => {
    const name = await fx.images.create(fx.pool, 'img-nolock', 1 * MiB, { features: ['layering'] });
    const img = await fx.pool.openImage(name);
    try {
      await expect(img.getLockOwners()).rejects.toMatchObject({ code: 'EINVAL' });
      await expect(img.breakLock('')).rejects.toThrow(TypeError);
      await expect(img.breakLock(5 as unknown as string)).rejects.toThrow(TypeError);
      // Watchers need no lock: this handle is the one.
      expect(await img.listWatchers()).toHaveLength(1);
    } finally {
      await img.close();
    }
  });

  it('updateFeatures: disable fast-diff/object-map; enabling them on a written image flags the map invalid', async () => {
    const name = await fx.images.create(fx.pool, 'img-feat', 8 * MiB);
    const img = await fx.pool.openImage(name);
    await img.write(rnd(4096), 0);
    await img.updateFeatures(['fast-diff', 'object-map'], false);
    expect((await img.stat()).features).not.toContain('object-map');
    expect((await info(name)).features).not.toContain('fast-diff');
    await img.write(rnd(4096), 4 * MiB);
    await img.updateFeatures(['object-map', 'fast-diff'], true);
    const st = await img.stat();
    expect(st.features).toEqual(expect.arrayContaining(['object-map', 'fast-diff']));
    expect(st.flags).toEqual({ objectMapInvalid: true, fastDiffInvalid: true });
    expect((await info(name)).flags).toEqual(expect.arrayContaining(['object map invalid', 'fast diff invalid']));
    await img.close();
    await rbdCli(A, ['--no-progress', 'object-map', 'rebuild', `${A.pool}/${name}`]);
    const img2 = await fx.pool.openImage(name);
    expect((await img2.stat()).flags).toEqual({ objectMapInvalid: false, fastDiffInvalid: false });
    await img2.close();
  });

  it('readOnly open reads the data and reports readOnly', async () => {
    const name = await fx.images.create(fx.pool, 'img-ro', 1 * MiB);
    const w = await fx.pool.openImage(name);
    const data = rnd(8 * KiB);
    await w.write(data, 0);
    await w.close();
    const ro = await fx.pool.openImage(name, { readOnly: true });
    expect(ro.readOnly).toBe(true);
    expect((await ro.read(0, data.length)).equals(data)).toBe(true);
    await ro.close();
  });

  it('small reads share slabs without overlapping; readInto fills a caller buffer', async () => {
    const name = fx.images.name('img-small');
    const data = rnd(2 * MiB);
    await rbdCli(A, ['--no-progress', 'import', '-', `${A.pool}/${name}`], { input: data });
    const img = await fx.pool.openImage(name, { readOnly: true });
    // 600 concurrent reads of odd and slab-sized lengths: each must hold exactly its own bytes.
    const reqs = Array.from({ length: 600 }, (_, i) => ({ off: (i * 7919 * 13) % (2 * MiB - 20 * KiB), len: [1, 1000, 4096, 4097, 16 * KiB, 16 * KiB + 1][i % 6] }));
    const got = await Promise.all(reqs.map((q) => img.read(q.off, q.len)));
    got.forEach((b, i) => expect(b.equals(data.subarray(reqs[i].off, reqs[i].off + reqs[i].len)), `read ${i}`).toBe(true));
    // readInto: a Buffer, a Uint8Array view at an offset, and a read crossing the end (short count).
    const target = Buffer.alloc(64 * KiB, 0xee);
    expect(await img.readInto(target, 4096)).toBe(64 * KiB);
    expect(target.equals(data.subarray(4096, 4096 + 64 * KiB))).toBe(true);
    const backing = new Uint8Array(10_000).fill(7);
    const view = backing.subarray(1000, 9000);
    expect(await img.readInto(view, 100)).toBe(8000);
    expect(Buffer.from(view).equals(data.subarray(100, 8100))).toBe(true);
    expect(backing[999]).toBe(7);
    expect(backing[9000]).toBe(7);
    expect(await img.readInto(Buffer.alloc(4096), 2 * MiB - 100)).toBe(100);
    expect(await img.readInto(Buffer.alloc(0), 0)).toBe(0);
    await expect(img.readInto(Buffer.alloc(10), 2 * MiB)).rejects.toMatchObject({ code: 'EINVAL' });
    expect(() => img.readInto('x' as never, 0)).toThrow(TypeError);
    expect(() => img.readInto(Buffer.alloc(1), -1)).toThrow(RangeError);
    await img.close();
    await expect(img.readInto(Buffer.alloc(1), 0)).rejects.toMatchObject({ code: 'ERR_CLOSED' });
  });

  it('many concurrent writes and reads at once (QD 64) keep data intact', async () => {
    const name = await fx.images.create(fx.pool, 'img-qd', 4 * MiB);
    const img = await fx.pool.openImage(name);
    const bufs = Array.from({ length: 64 }, () => rnd(64 * KiB));
    await Promise.all(bufs.map((b, i) => img.write(b, i * 64 * KiB)));
    const back = await Promise.all(bufs.map((_, i) => img.read(i * 64 * KiB, 64 * KiB)));
    back.forEach((b, i) => expect(b.equals(bufs[i])).toBe(true));
    expect(await rbdExportMd5(A, name)).toBe(md5(Buffer.concat(bufs)));
    await img.close();
  });
});
