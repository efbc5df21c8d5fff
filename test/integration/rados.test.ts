import { createHash, randomBytes } from 'node:crypto';
import { createServer } from 'node:net';
import { afterAll, describe, expect, it } from 'vitest';
import { Rados } from '../../lib/index.js';
import { cephCli, rbdCli, rbdExportMd5 } from '../support/clusters.js';
import { A, B, connectTo } from '../support/helpers.js';

async function unusedPort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((res) => srv.listen(0, '127.0.0.1', res));
  const port = (srv.address() as { port: number }).port;
  await new Promise<void>((res) => srv.close(() => res()));
  return port;
}

describe('Rados', () => {
  const open: Rados[] = [];
  afterAll(async () => {
    await Promise.allSettled(open.map((r) => r.close()));
  });

  it('connects; fsid matches `ceph fsid`; listPools contains the test pool', async () => {
    const r = await connectTo(A);
    open.push(r);
    expect(r.user).toBe(`client.${A.user ?? 'admin'}`);
    const fsid = await r.fsid();
    expect(fsid).toBe((await cephCli(A, ['fsid'])).trim());
    const pools = await r.listPools();
    expect(pools).toContain(A.pool);
    const cliPools = JSON.parse(await cephCli(A, ['osd', 'pool', 'ls', '--format', 'json'])) as string[];
    expect([...pools].sort()).toEqual([...cliPools].sort());
  });

  it('openPool: opens an existing pool (with namespace) and rejects a missing one with ENOENT', async () => {
    const r = await connectTo(A);
    open.push(r);
    const p = await r.openPool(A.pool);
    expect(p.name).toBe(A.pool);
    expect(p.id).toBeGreaterThan(0);
    const ns = await r.openPool(A.pool, { namespace: 'ns1' });
    expect(ns.spec).toBe(`${A.pool}/ns1`);
    await ns.close();
    await p.close();
    const err = await r.openPool('no-such-pool-xyz').catch((e) => e);
    expect(err).toBeInstanceOf(Error);
    expect(err.code).toBe('ENOENT');
    expect(err.errno).toBe(-2);
    expect(err.message).toContain('no-such-pool-xyz');
    expect(err.message).toMatch(/open pool/);
  });

  it('mon command and commandJson', async () => {
    const r = await connectTo(A);
    open.push(r);
    const st = await r.commandJson<{ fsid: string }>('mon', { prefix: 'status' });
    expect(st.fsid).toBe(await r.fsid());
    const err = await r.command('mon', { prefix: 'osd pool get', pool: 'no-such-pool-xyz', var: 'size' }).catch((e) => e);
    expect(err.code).toBe('ENOENT');
  });

  it('two connections to the two clusters coexist in one process', async () => {
    expect(B, 'cluster b is provided by the global setup').toBeDefined();
    const [ra, rb] = await Promise.all([connectTo(A), connectTo(B!)]);
    open.push(ra, rb);
    const [fa, fb] = await Promise.all([ra.fsid(), rb.fsid()]);
    expect(fa).not.toBe(fb);
    expect(fb).toBe((await cephCli(B!, ['fsid'])).trim());
    // Both usable concurrently.
    const [pa, pb] = await Promise.all([ra.listPools(), rb.listPools()]);
    expect(pa).toContain(A.pool);
    expect(pb).toContain(B!.pool);
    const [poa, pob] = await Promise.all([ra.openPool(A.pool), rb.openPool(B!.pool)]);
    await Promise.all([poa.listImages(), pob.listImages()]);
    // Concurrent data I/O on both clusters, checked with each cluster's CLI.
    const name = `two-${process.pid}`;
    const data = { a: randomBytes(1 << 20), b: randomBytes(1 << 20) };
    await Promise.all([poa.createImage(name, 1 << 20), pob.createImage(name, 1 << 20)]);
    const [ia, ib] = await Promise.all([poa.openImage(name), pob.openImage(name)]);
    await Promise.all([ia.write(data.a, 0), ib.write(data.b, 0)]);
    await Promise.all([ia.close(), ib.close()]);
    const md5 = (b: Buffer) => createHash('md5').update(b).digest('hex');
    expect(await rbdExportMd5(A, name)).toBe(md5(data.a));
    expect(await rbdExportMd5(B!, name)).toBe(md5(data.b));
    await Promise.all([poa.removeImage(name), pob.removeImage(name)]);
    await ra.close();
    // Closing one leaves the other working.
    expect((await rb.listPools())).toContain(B!.pool);
    await rb.close();
  });

  it('close: idempotent; later calls reject with ERR_CLOSED; pools of a closed connection are closed', async () => {
    const r = await connectTo(A);
    const p = await r.openPool(A.pool);
    const c1 = r.close();
    const c2 = r.close();
    expect(c1).toBe(c2);
    await c1;
    expect(r.closed).toBe(true);
    expect(p.closed).toBe(true);
    await expect(r.listPools()).rejects.toMatchObject({ code: 'ERR_CLOSED' });
    await expect(r.fsid()).rejects.toMatchObject({ code: 'ERR_CLOSED' });
    await expect(r.openPool(A.pool)).rejects.toMatchObject({ code: 'ERR_CLOSED' });
    await expect(p.listImages()).rejects.toMatchObject({ code: 'ERR_CLOSED' });
  });

  it('timeoutMs: a dead mon address rejects with ETIMEDOUT within a bounded time', async () => {
    const port = await unusedPort();
    const t0 = Date.now();
    const err = await Rados.connect({
      conf: A.conf,
      keyring: A.keyring,
      user: A.user,
      config: { mon_host: `v2:127.0.0.1:${port}` },
      timeoutMs: 3000,
    }).catch((e) => e);
    const elapsed = Date.now() - t0;
    expect(err).toBeInstanceOf(Error);
    expect(err.code).toBe('ETIMEDOUT');
    expect(err.message).toMatch(/connect/);
    // Bound generous enough for a loaded 2-core machine; the point is "no hang".
    expect(elapsed).toBeLessThan(20_000);
  }, 30_000);

  it('timeoutMs: a write to a full pool (quota) rejects with ETIMEDOUT instead of hanging; close still completes', async () => {
    const poolName = `full-${process.pid}`;
    await cephCli(A, ['osd', 'pool', 'create', poolName, '8']);
    const r = await Rados.connect({ conf: A.conf, keyring: A.keyring, user: A.user, timeoutMs: 3000 });
    try {
      await rbdCli(A, ['pool', 'init', poolName]);
      await rbdCli(A, ['create', '--size', '16M', `${poolName}/img`]);
      const p = await r.openPool(poolName);
      const img = await p.openImage('img');
      await img.write(Buffer.alloc(2 << 20, 1), 0);
      await img.flush();
      await cephCli(A, ['osd', 'pool', 'set-quota', poolName, 'max_bytes', '1048576']);
      // The mon flags the pool full once the OSD has reported its usage.
      let full = false;
      for (let i = 0; i < 60 && !full; i++) {
        const pools = JSON.parse(await cephCli(A, ['osd', 'pool', 'ls', 'detail', '--format', 'json'])) as { pool_name: string; flags_names: string }[];
        full = /full/.test(pools.find((x) => x.pool_name === poolName)?.flags_names ?? '');
        if (!full) await new Promise((res) => setTimeout(res, 1000));
      }
      expect(full).toBe(true);
      const t0 = Date.now();
      // The write may land in librbd's writeback cache: the flush must then fail instead.
      const err = await img.write(Buffer.alloc(4096, 2), 12 << 20).then(() => img.flush()).catch((e) => e);
      expect(err).toBeInstanceOf(Error);
      expect(err.code).toBe('ETIMEDOUT');
      expect(err.message).toContain(`${poolName}/img`);
      expect(Date.now() - t0).toBeLessThan(30_000);
      // Close gives up on the dirty data after the timeout too (its result is not the point: no hang).
      await img.close().catch(() => {});
    } finally {
      await r.close();
      await cephCli(A, ['osd', 'pool', 'rm', poolName, poolName, '--yes-i-really-really-mean-it']);
    }
  });

  it('a wrong key fails with an error that does not reveal the key', async () => {
    const key = 'AQBnotarealkeynotarealkeynotarealkeyAA==';
    const err = await Rados.connect({ conf: A.conf, user: A.user, key, timeoutMs: 5000 }).catch((e) => e);
    expect(err).toBeInstanceOf(Error);
    expect(typeof err.code).toBe('string');
    expect(String(err.message)).not.toContain(key);
    expect(JSON.stringify(err)).not.toContain(key);
  }, 30_000);
});
