// Faults on a dedicated small cluster (never the shared suite clusters a/b, which other test
// files use): a hung OSD, a pool over quota, close() with work in flight.
//
// "OSD killed, then restarted": the OSD is memstore, so a killed OSD comes back empty (its
// PGs and every object are gone), which tests nothing about rbd-stream. We SIGSTOP the OSD
// instead — to clients that is exactly a dead OSD that is still marked up (the mon only marks a
// lone OSD down after `mon osd report timeout`, 15 min) — and SIGCONT it as the "restart".
// Both outcomes are checked: ops in flight complete after a short stop, and fail with
// ETIMEDOUT within the configured timeout after a long one; a re-run then gives the same bytes.
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Rados, isRbdError, type Pool } from '../lib/index.js';
import { down, signalDaemon, spawnWatchdog, up } from '../scripts/cluster.js';
import { cephCli, rbdCli, rbdExportMd5, type TestCluster } from './clusters.js';

const TIMEOUT_MS = 3000;
/** librbd may retry once (e.g. object map update, then the write): allow a few timeouts + slack. */
const BOUND_MS = 4 * TIMEOUT_MS + 5000;
const md5 = (b: Buffer) => createHash('md5').update(b).digest('hex');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

let dir: string | undefined;
let fx: TestCluster;
let watchdog: number | undefined;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'rbd-stream-faults-'));
  watchdog = spawnWatchdog(dir, process.pid); // tears the set down even if this worker is killed
  const set = await up({ dir, names: ['fx'], osdMiB: 512 });
  const c = set.clusters.fx;
  fx = { name: 'fx', conf: c.conf, keyring: c.keyring, user: c.user, pool: 'rbd', fsid: c.fsid };
}, 180_000);

afterAll(async () => {
  if (!dir) return;
  try {
    signalDaemon(dir, 'fx', 'osd', 'SIGCONT');
  } catch { /* set never came up */ }
  try {
    await down(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
    if (watchdog) try { process.kill(watchdog); } catch { /* already gone */ }
  }
}, 120_000);

function osd(sig: 'SIGSTOP' | 'SIGCONT') {
  expect(signalDaemon(dir!, 'fx', 'osd', sig)).toBe(true);
}

async function withPool<T>(f: (p: Pool, r: Rados) => Promise<T>, timeoutMs = TIMEOUT_MS): Promise<T> {
  const r = await Rados.connect({ conf: fx.conf, keyring: fx.keyring, user: fx.user, timeoutMs });
  try {
    return await f(await r.openPool(fx.pool), r);
  } finally {
    await r.close();
  }
}

async function timed<T>(p: Promise<T>): Promise<{ ms: number; value?: T; error?: Error & { code?: string } }> {
  const t0 = Date.now();
  try {
    return { ms: Date.now() - t0, value: await p };
  } catch (e) {
    return { ms: Date.now() - t0, error: e as Error };
  }
}

describe('hung OSD (SIGSTOP/SIGCONT)', () => {
  it('ops in flight complete after a short stop, with the right bytes', async () => {
    const name = `hang-short-${Date.now()}`;
    const data = randomBytes(8 << 20);
    await withPool(async (p) => {
      await p.createImage(name, 8 << 20);
      const img = await p.openImage(name);
      await img.write(Buffer.alloc(4096, 1), 0); // exclusive lock taken before the stop
      osd('SIGSTOP');
      let writes: Promise<number>[];
      try {
        writes = Array.from({ length: 8 }, (_, i) => img.write(data.subarray(i << 20, (i + 1) << 20), i << 20));
        await sleep(TIMEOUT_MS / 3);
      } finally {
        osd('SIGCONT');
      }
      const res = await timed(Promise.all(writes));
      expect(res.error).toBeUndefined();
      await img.flush();
      await img.close();
    }, 20_000);
    expect(await rbdExportMd5(fx, name)).toBe(md5(data));
  });

  it('a long stop fails with ETIMEDOUT within the timeout; after SIGCONT a re-run gives identical bytes', async () => {
    const name = `hang-long-${Date.now()}`;
    const data = randomBytes(4 << 20);
    await withPool(async (p) => {
      await p.createImage(name, 4 << 20);
      const img = await p.openImage(name);
      await img.write(Buffer.alloc(4096, 1), 0);
      osd('SIGSTOP');
      let res;
      try {
        res = await timed(Promise.all([img.write(data, 0), img.read(0, 4096)]));
      } finally {
        osd('SIGCONT');
      }
      expect(res.error, 'must fail while the OSD is stopped').toBeInstanceOf(Error);
      expect(isRbdError(res.error)).toBe(true);
      expect(res.error!.code).toBe('ETIMEDOUT');
      expect(res.error!.message).toMatch(/(write|read) 'rbd\/hang-long-\d+' failed: .*timed out.*OSD down or hung/);
      expect(res.ms).toBeLessThan(BOUND_MS);
      // Re-run on the same handle once the OSD answers again.
      await img.write(data, 0);
      await img.flush();
      await img.close();
    });
    expect(await rbdExportMd5(fx, name)).toBe(md5(data));
  });

  it('close() of a connection while the OSD is hung returns within a bound; ops reject', async () => {
    const name = `hang-close-${Date.now()}`;
    await withPool(async (p) => { await p.createImage(name, 4 << 20); });
    const r = await Rados.connect({ conf: fx.conf, keyring: fx.keyring, user: fx.user, timeoutMs: TIMEOUT_MS });
    const p = await r.openPool(fx.pool);
    const img = await p.openImage(name);
    await img.write(Buffer.alloc(4096, 1), 0);
    osd('SIGSTOP');
    let closed;
    const ops = Array.from({ length: 4 }, (_, i) => img.write(Buffer.alloc(65536, i), i * 65536));
    try {
      closed = await timed(r.close());
    } finally {
      osd('SIGCONT');
    }
    expect(closed.error).toBeUndefined();
    expect(closed.ms).toBeLessThan(BOUND_MS * 2);
    const settled = await Promise.allSettled(ops);
    for (const s of settled) {
      if (s.status === 'rejected') expect(isRbdError(s.reason)).toBe(true);
    }
    await expect(img.read(0, 1)).rejects.toMatchObject({ code: 'ERR_CLOSED' });
    await expect(r.listPools()).rejects.toMatchObject({ code: 'ERR_CLOSED' });
  });
});

describe('pool over quota', () => {
  it('writes fail with a clear error within the timeout; after the quota is lifted a re-run completes', async () => {
    const pool = `quota${Date.now().toString(36)}`;
    const name = 'q';
    const data = randomBytes(4 << 20);
    await cephCli(fx, ['osd', 'pool', 'create', pool, '8']);
    await rbdCli(fx, ['pool', 'init', pool]);
    const r = await Rados.connect({ conf: fx.conf, keyring: fx.keyring, user: fx.user, timeoutMs: TIMEOUT_MS });
    try {
      const p = await r.openPool(pool);
      await p.createImage(name, 16 << 20);
      const img = await p.openImage(name);
      await img.write(randomBytes(2 << 20), 8 << 20);
      await cephCli(fx, ['osd', 'pool', 'set-quota', pool, 'max_bytes', String(1 << 20)]);
      await waitPoolFlag(pool, true);
      const res = await timed(img.write(data, 0));
      expect(res.error, 'write into a full pool must fail').toBeInstanceOf(Error);
      expect(['ETIMEDOUT', 'EDQUOT', 'ENOSPC']).toContain(res.error!.code);
      expect(res.error!.message).toContain(`'${pool}/${name}'`);
      expect(res.ms).toBeLessThan(BOUND_MS);
      const res2 = await timed(p.createImage('q2', 1 << 20));
      expect(['ETIMEDOUT', 'EDQUOT', 'ENOSPC']).toContain(res2.error?.code);

      await cephCli(fx, ['osd', 'pool', 'set-quota', pool, 'max_bytes', '0']);
      await waitPoolFlag(pool, false);
      await img.write(data, 0);
      await img.flush();
      await img.close();
    } finally {
      await r.close();
    }
    const expected = await rbdExportMd5(fx, `${pool}/${name}`);
    const head = await rbdCli(fx, ['export', `${pool}/${name}`, '-', '--no-progress'], { buffer: true });
    expect(head.subarray(0, 4 << 20).equals(data)).toBe(true);
    expect(md5(head)).toBe(expected);
    await cephCli(fx, ['osd', 'pool', 'rm', pool, pool, '--yes-i-really-really-mean-it']);
  });
});

describe('close() with work in flight', () => {
  it('no crash, in-flight ops settle, later ops reject with ERR_CLOSED, nothing stays open', async () => {
    const name = `inflight-${Date.now()}`;
    await withPool(async (p) => {
      await p.createImage(name, 16 << 20);
      const img = await p.openImage(name);
      await img.write(randomBytes(8 << 20), 0);
      await img.close();
    }, 20_000);
    for (let round = 0; round < 5; round++) {
      const r = await Rados.connect({ conf: fx.conf, keyring: fx.keyring, user: fx.user, timeoutMs: 20_000 });
      const p = await r.openPool(fx.pool);
      const img = await p.openImage(name);
      const ro = await p.openImage(name, { readOnly: true });
      const ops: Promise<unknown>[] = [];
      for (let i = 0; i < 32; i++) ops.push(img.write(randomBytes(65536), i * 65536), ro.read(i * 65536, 65536));
      ops.push((async () => { for await (const _ of ro.diff()) { /* drain */ } })());
      ops.push(p.openImage(name, { readOnly: true }), ro.listSnapshots(), img.stat());
      // Close at different points: before, during and after the ops are submitted to librbd.
      const settling = Promise.allSettled(ops); // observed now: rejections are expected
      if (round > 0) await sleep(round * 5);
      const closing = r.close();
      const late = Promise.allSettled([img.read(0, 1), p.listImages(), r.listPools()]);
      await closing;
      const settled = await settling;
      for (const s of settled) {
        if (s.status === 'rejected') {
          expect(isRbdError(s.reason), String(s.reason)).toBe(true);
        }
      }
      for (const l of await late) {
        expect(l.status).toBe('rejected');
        expect((l as PromiseRejectedResult).reason.code).toBe('ERR_CLOSED');
      }
      expect(img.closed && ro.closed && p.closed && r.closed).toBe(true);
      // A pool opened by an op that raced close() is closed too (or was refused).
      const late2 = settled[settled.length - 3];
      if (late2.status === 'fulfilled') expect((late2.value as { closed: boolean }).closed).toBe(true);
    }
    // Nothing kept the image open: it can be removed right away.
    await withPool((p) => p.removeImage(name), 20_000);
  });
});

async function waitPoolFlag(pool: string, full: boolean) {
  for (let i = 0; i < 60; i++) {
    const pools = JSON.parse(await cephCli(fx, ['osd', 'pool', 'ls', 'detail', '--format', 'json'])) as
      { pool_name: string; flags_names: string }[];
    const f = pools.find((x) => x.pool_name === pool)?.flags_names ?? '';
    if (/full/.test(f) === full) return;
    await sleep(500);
  }
  throw new Error(`pool ${pool} never became ${full ? 'full' : 'writable'}`);
}
