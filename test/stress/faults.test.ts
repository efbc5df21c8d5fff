// Over ~400 lines: each fault runs on the same dedicated clusters, started once for all of them.
// Faults on dedicated small clusters (never the shared suite clusters a/b, which other test
// files use): a hung OSD, a killed and restarted OSD, a pool over quota, close() with work in flight.
//
// Hung: SIGSTOP of the (memstore) OSD — to clients exactly a dead OSD that is still marked up (the
// mon only marks a lone OSD down after `mon osd report timeout`, 15 min) — then SIGCONT.
// Killed: SIGKILL, then a restart, of a BlueStore OSD (a memstore OSD would come back empty).
// Both outcomes are checked: ops in flight complete after a short outage, and fail with
// ETIMEDOUT within the configured timeout after a long one; a re-run then gives the same bytes.
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { Rados, isRbdError, replicate, type Image, type Pool } from '../../lib/index.js';
import { withReplicateTestHooks } from '../../lib/transfer/replicate/options.js';
import { down, restartOsd, signalDaemon, spawnWatchdog, status, stopDaemon, up, type UpOptions } from '../../tools/cluster/index.js';
import { cephCli, getClusters, rbdCli, rbdExportMd5, type TestCluster } from '../support/clusters.js';

const TIMEOUT_MS = 3000;
/** librbd may retry once (e.g. object map update, then the write): allow a few timeouts + slack. */
const BOUND_MS = 4 * TIMEOUT_MS + 5000;
const md5 = (b: Buffer) => createHash('md5').update(b).digest('hex');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface OwnCluster { dir: string; watchdog: number }

/**
 * A one-OSD cluster of this file's own in a temp dir, with a watchdog that tears it down even if
 * this worker is killed.
 */
async function startOwnCluster(own: OwnCluster, name: string, opts: Omit<UpOptions, 'dir' | 'names'>): Promise<TestCluster> {
  const c = (await up({ ...opts, dir: own.dir, names: [name], fastMon: true })).clusters[name];
  const cluster: TestCluster = { name, conf: c.conf, keyring: c.keyring, user: c.user, pool: 'rbd', fsid: c.fsid };
  return cluster;
}
function ownClusterDir(prefix: string): OwnCluster {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, watchdog: spawnWatchdog(dir, process.pid) };
}
async function stopOwnCluster(own: OwnCluster | undefined): Promise<void> {
  if (!own) return;
  try {
    await down(own.dir);
  } finally {
    rmSync(own.dir, { recursive: true, force: true });
    try { process.kill(own.watchdog); } catch { /* already gone */ }
  }
}

let fxOwn: OwnCluster | undefined;
let dir: string | undefined;
let fx: TestCluster;

beforeAll(async () => {
  fxOwn = ownClusterDir('rbd-stream-faults-');
  dir = fxOwn.dir;
  fx = await startOwnCluster(fxOwn, 'fx', { osdMiB: 512 });
  // PG read leases are ~0.8 × the heartbeat grace (20 s): a longer pause of the only OSD can leave
  // its PGs 'waiting for readable' after SIGCONT. A longer grace keeps our pauses well inside it.
  await cephCli(fx, ['config', 'set', 'global', 'osd_heartbeat_grace', '120']);
}, 180_000);

afterAll(async () => {
  if (!dir) return;
  try {
    signalDaemon(dir, 'fx', 'osd', 'SIGCONT');
  } catch { /* set never came up */ }
  await stopOwnCluster(fxOwn);
});

// Every scenario starts from a running, answering OSD (a scenario that failed may have left
// it stopped); on failure, what the OSD was stuck on is printed to help tell why.
beforeEach(() => resumeOsd(), 90_000);

/**
 * SIGCONT, then wait until the OSD answers everything again. Used before each scenario and
 * wherever a scenario re-runs work after a long stop.
 */
async function resumeOsd(): Promise<void> {
  signalDaemon(dir!, 'fx', 'osd', 'SIGCONT');
  // Ops of an earlier scenario can stay parked in the OSD after SIGCONT ('waiting for readable':
  // the PG's read lease lapsed during the pause) and block later ops on the same objects. They
  // never reach the 30 s slow-op report before the next scenario starts, so look at the ops in
  // flight directly: any older than 2 s → mark the OSD down once (it rejoins at once and re-peers,
  // which releases them), then wait until none is left and every PG is active again.
  let repeered = false;
  let lastError: Error | undefined;
  for (let i = 0; i < 120; i++) {
    let ops: { ops?: { age: number; description: string }[] };
    try {
      ops = JSON.parse(await cephCli(fx, ['tell', 'osd.0', 'dump_ops_in_flight', '--format', 'json'], { timeoutMs: 30_000 })) as typeof ops;
    } catch (e) {
      // After `osd down` (here or by an earlier scenario) the OSD is down in the map until it
      // rejoins, and `tell` fails with ENXIO meanwhile: wait for it, and report the error if it lasts.
      lastError = e as Error;
      await sleep(500);
      continue;
    }
    const inflight = ops.ops ?? [];
    if (inflight.length === 0 && (await pgsActive())) return;
    if (!repeered && inflight.some((o) => o.age > 2)) {
      console.error(`[faults] ${inflight.length} op(s) parked in osd.0 (oldest ${Math.max(...inflight.map((o) => o.age)).toFixed(0)} s): re-peering`);
      await cephCli(fx, ['osd', 'down', '0']);
      repeered = true;
    }
    await sleep(500);
  }
  throw new Error(`osd.0 still holds ops or inactive PGs after re-peering${lastError ? ` (last: ${lastError.message})` : ''}`);
}

async function pgsActive(): Promise<boolean> {
  const fxStatus = (await status(dir!)).clusters.fx;
  return fxStatus.reachable && fxStatus.pgs === fxStatus.pgsActive;
}
afterEach(async (ctx) => {
  if (ctx.task.result?.state !== 'fail') return;
  const out: string[] = [];
  for (const args of [['health', 'detail'], ['tell', 'osd.0', 'dump_blocked_ops'], ['tell', 'osd.0', 'dump_ops_in_flight']]) {
    out.push(`$ ceph ${args.join(' ')}\n${await cephCli(fx, args, { timeoutMs: 15_000 }).catch((e) => String(e))}`);
  }
  console.error(`[faults] diagnostics after '${ctx.task.name}':\n${out.join('\n').slice(0, 8000)}`);
});

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
        await resumeOsd(); // the re-run below must not meet ops parked by the pause
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

// Pool over quota: see 'replicate under faults' (a raw write and a replicate fail the same way).

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

// --- replicate / sync under faults: source on the shared cluster a (only read, never faulted),
// target on the dedicated cluster fx. ------------------------------------------------------------

const A = getClusters().a;
const MiB = 1 << 20;
const SRC_SIZE = 48 * MiB;
const srcName = `faults-src-${process.pid}-${Date.now().toString(36)}`;

describe('replicate under faults', () => {
  let ra: Rados;
  let src: Image;
  let srcMd5: string;

  beforeAll(async () => {
    ra = await Rados.connect({ conf: A.conf, keyring: A.keyring, user: A.user, timeoutMs: 20_000 });
    const pa = await ra.openPool(A.pool);
    await pa.createImage(srcName, SRC_SIZE);
    src = await pa.openImage(srcName);
    for (let off = 0; off < SRC_SIZE; off += 4 * MiB) await src.write(randomBytes(4 * MiB), off);
    await src.discard(20 * MiB, 4 * MiB); // a hole the copy must zero, not skip
    await src.createSnapshot('base');
    srcMd5 = await rbdExportMd5(A, `${A.pool}/${srcName}@base`);
  });
  afterAll(async () => {
    if (!ra) return;
    try {
      await src.close();
      await rbdCli(A, ['snap', 'purge', '--no-progress', `${A.pool}/${srcName}`]).catch(() => {});
      await (await ra.openPool(A.pool)).removeImage(srcName).catch(() => {});
    } finally {
      await ra.close();
    }
  });

  const connectPool = async (c: TestCluster, timeoutMs: number) => {
    const r = await Rados.connect({ conf: c.conf, keyring: c.keyring, user: c.user, timeoutMs });
    return { r, p: await r.openPool(c.pool) };
  };
  const target = (timeoutMs = TIMEOUT_MS) => connectPool(fx, timeoutMs);
  const opts = (p: Pool, name: string) => ({
    source: src, toSnapshot: 'base', target: { pool: p, name, create: {} }, concurrency: 2, chunkSize: 1 * MiB,
  });
  /**
   * Resolves once the copy into `name` has recorded a checkpoint past offset 0, read through a
   * second connection: a fault injected earlier leaves nothing to resume from, by design.
   */
  const checkpointRecorded = async (c: TestCluster, name: string) => {
    const watcher = await connectPool(c, 20_000);
    try {
      const img = await watcher.p.openImage(name, { readOnly: true });
      try {
        for (;;) {
          const cp = await img.getMetadata('rbd-stream.checkpoint');
          if (cp !== undefined && JSON.parse(cp).doneOffset > 0) return;
          await sleep(5);
        }
      } finally {
        await img.close();
      }
    } finally {
      await watcher.r.close();
    }
  };
  /**
   * A slow copy into `name` (one 256 KiB chunk at a time at 4 MiB/s, 12 s in all, a checkpoint
   * every 100 ms) with `fault` injected once a checkpoint past 0 is recorded. `faultAt` is 0 if it
   * never was; `doneAtFault` is the copy's progress then. (Unpaced, a loaded machine once saw the
   * checkpoint only after the data was done, so the fault hit the last steps instead.)
   */
  const copyFaultedAfterCheckpoint = async (c: TestCluster, p: Pool, name: string, fault: () => void) => {
    let faultAt = 0;
    let done = 0;
    let doneAtFault = 0;
    let injecting: Promise<void> | undefined;
    const res = await timed(replicate(withReplicateTestHooks({
      ...opts(p, name),
      concurrency: 1,
      chunkSize: 256 * 1024,
      bandwidth: 4 * MiB,
      onProgress: (ev) => {
        done = ev.bytesDone;
        injecting ??= checkpointRecorded(c, name).then(() => {
          faultAt = Date.now();
          doneAtFault = done;
          fault();
        });
      },
    }, { checkpointMs: 100 })));
    const settledAt = Date.now();
    await injecting?.catch(() => undefined);
    return { res, faultAt, settledAt, doneAtFault };
  };
  /** After a failed copy: a re-run on a new connection resumes from the checkpoint and gives the snapshot's bytes. */
  const rerunResumesIdentical = async (c: TestCluster, name: string) => {
    const again = await connectPool(c, 30_000);
    try {
      const r2 = await replicate({ ...opts(again.p, name) });
      expect(r2.resumed).toBe(true);
      expect(r2.bytesRead).toBeLessThan(SRC_SIZE);
    } finally {
      await again.r.close();
    }
    expect(await rbdExportMd5(c, `${name}@base`)).toBe(srcMd5);
  };

  it('target OSD hung mid-copy, briefly: the copy completes after SIGCONT, identical', async () => {
    const name = `rep-short-${Date.now()}`;
    const { r, p } = await target(20_000);
    try {
      let stopped = false;
      let stops = 0;
      const res = await replicate({
        ...opts(p, name),
        onProgress: (ev) => {
          if (stopped || stops > 0 || ev.bytesDone < 4 * MiB) return;
          stopped = true;
          stops++;
          osd('SIGSTOP');
          setTimeout(() => { osd('SIGCONT'); stopped = false; }, 1500);
        },
      }).finally(() => { if (stopped) osd('SIGCONT'); });
      expect(stops).toBe(1);
      expect(res.bytesRead).toBeGreaterThan(0);
    } finally {
      await r.close();
    }
    expect(await rbdExportMd5(fx, `${name}@base`)).toBe(srcMd5);
  });

  it('target OSD hung mid-copy: ETIMEDOUT within the timeout; after SIGCONT a re-run resumes, identical', async () => {
    const name = `rep-long-${Date.now()}`;
    const { r, p } = await target();
    let run: Awaited<ReturnType<typeof copyFaultedAfterCheckpoint>> | undefined;
    try {
      run = await copyFaultedAfterCheckpoint(fx, p, name, () => osd('SIGSTOP'));
    } finally {
      if (run?.faultAt) await resumeOsd(); // the re-run below must not meet ops parked by the pause
      await r.close();
    }
    const { res, faultAt: stoppedAt, settledAt, doneAtFault } = run;
    expect(stoppedAt, 'the copy ended before the OSD could be stopped').toBeGreaterThan(0);
    expect(doneAtFault, 'the OSD was stopped after the data phase').toBeLessThan(SRC_SIZE);
    expect(res.error?.code, String(res.error)).toBe('ETIMEDOUT');
    expect(res.error!.message).toMatch(/timed out/);
    // From the stop to the rejection: the first target op to fail (FUA writes, past librbd's
    // write-around cache) rejects the copy at once, while the others drain in the background:
    // measured 3.0 s (one op timeout), at most 6 s when an object map update came first (before:
    // waiting for every op to drain, 6–15 s; before that a deferred flush error, 27 s).
    console.log(`[faults] hung target: rejected ${settledAt - stoppedAt} ms after the stop: ${res.error?.message}`);
    expect(settledAt - stoppedAt).toBeLessThan(BOUND_MS);
    await rerunResumesIdentical(fx, name);
  });

  // The last steps send a record ahead of librbd's op on the header: the identity ahead of the
  // snapshot create, the binding ahead of the close. The record's own reply fails the copy, after
  // one op timeout, while librbd's create or close waits out several (at a 3 s timeout, with the
  // copy waiting for them: 21 s at the snapshot step, 9 s at the binding; run as a control).
  for (const step of ['snapshot', 'binding'] as const) {
    it(`target OSD hung at the ${step} step: ETIMEDOUT after one op timeout; after SIGCONT a re-run finishes it, identical`, async () => {
      const name = `rep-${step}-${Date.now()}`;
      const { r, p } = await target();
      let stoppedAt = 0;
      // Every OSD thread stopped before the record is sent: once, under CI load, the record
      // succeeded although sent after kill() had returned (the create timed out instead).
      const stop = async () => {
        stoppedAt = Date.now();
        await stopDaemon(dir!, 'fx', 'osd');
      };
      let res: Awaited<ReturnType<typeof timed>> | undefined;
      let settledAt = 0;
      // The JS thread must stay free while librbd's close waits on the hung OSD (it once ran on it:
      // a handle copy released there was the last). A blocked loop shows as a gap of seconds.
      let lastTick = Date.now();
      let maxGap = 0;
      const ticker = setInterval(() => {
        maxGap = Math.max(maxGap, Date.now() - lastTick);
        lastTick = Date.now();
      }, 50);
      try {
        res = await timed(replicate(withReplicateTestHooks(opts(p, name), step === 'snapshot' ? { beforeTargetSnapshot: stop } : { afterTargetSnapshot: stop })));
        settledAt = Date.now();
        await sleep(TIMEOUT_MS * 3); // the close goes on in the background meanwhile
      } finally {
        clearInterval(ticker);
        if (stoppedAt) await resumeOsd();
        await r.close();
      }
      console.log(`[faults] hung at the ${step} step: longest event-loop gap ${maxGap} ms`);
      expect(maxGap).toBeLessThan(TIMEOUT_MS - 500);
      expect(stoppedAt).toBeGreaterThan(0);
      expect(res.error?.code, String(res.error)).toBe('ETIMEDOUT');
      expect(res.error!.message).toMatch(/record image metadata/);
      console.log(`[faults] hung at the ${step} step: rejected ${settledAt - stoppedAt} ms after the stop`);
      expect(settledAt - stoppedAt).toBeLessThan(2 * TIMEOUT_MS);
      // What timed out may still have been applied after SIGCONT (the record always before the
      // snapshot: one client, one object). Every outcome leaves a copy the re-run completes.
      const again = await connectPool(fx, 30_000);
      try {
        const r2 = await replicate(opts(again.p, name));
        if (step === 'binding') {
          expect(r2.bytesRead).toBe(0);
          expect(r2.resumed || r2.alreadyCopied === true, JSON.stringify(r2)).toBe(true);
        }
      } finally {
        await again.r.close();
      }
      expect(await rbdExportMd5(fx, `${name}@base`)).toBe(srcMd5);
      const snaps = JSON.parse(await rbdCli(fx, ['snap', 'ls', '--format', 'json', `${fx.pool}/${name}`])) as { id: number; name: string }[];
      expect(snaps.map((x) => x.name)).toEqual(['base']);
      const meta = JSON.parse(await rbdCli(fx, ['image-meta', 'list', '--format', 'json', `${fx.pool}/${name}`])) as Record<string, string>;
      expect(JSON.parse(meta['rbd-stream.snap.base']).targetSnapId).toBe(snaps[0].id);
      expect(meta['rbd-stream.checkpoint']).toBeUndefined();
      expect(JSON.parse(await rbdCli(fx, ['lock', 'ls', '--format', 'json', `${fx.pool}/${name}`]))).toEqual([]);
    });
  }

  // A real kill: memstore would come back empty, so this target is a second one-OSD cluster on
  // BlueStore (a sparse file), whose OSD restarts with its data.
  describe('target OSD killed (SIGKILL) and restarted, BlueStore', () => {
    let fkOwn: OwnCluster | undefined;
    let kdir: string | undefined;
    let fk: TestCluster;
    beforeAll(async () => {
      fkOwn = ownClusterDir('rbd-stream-kill-');
      kdir = fkOwn.dir;
      fk = await startOwnCluster(fkOwn, 'fk', { osdMiB: 1024, objectstore: 'bluestore' });
    }, 180_000);
    afterAll(() => stopOwnCluster(fkOwn), 120_000);
    const killOsd = () => expect(signalDaemon(kdir!, 'fk', 'osd', 'SIGKILL')).toBe(true);
    const connectFk = (timeoutMs: number) => connectPool(fk, timeoutMs);

    it('restarted within the timeout: the copy completes (ops resent to the new OSD), identical', async () => {
      const name = `kill-short-${Date.now()}`;
      const { r, p } = await connectFk(30_000);
      let killedAt = 0;
      let restart: Promise<number> | undefined;
      try {
        const res = await replicate({
          ...opts(p, name),
          chunkSize: 256 * 1024,
          onProgress: (ev) => {
            if (restart || ev.bytesDone < 4 * MiB || ev.bytesDone >= ev.bytesTotal) return;
            killedAt = Date.now();
            killOsd();
            restart = sleep(1000).then(() => restartOsd(kdir!, 'fk'));
          },
        });
        expect(res.bytesRead).toBeGreaterThan(0);
      } finally {
        await restart?.catch(() => undefined);
        await r.close();
      }
      expect(killedAt, 'the copy ended before the OSD could be killed').toBeGreaterThan(0);
      console.log(`[faults] killed target OSD: the copy completed ${Date.now() - killedAt} ms after the kill`);
      expect(await rbdExportMd5(fk, `${name}@base`)).toBe(srcMd5);
    });

    it('not back within the timeout: ETIMEDOUT within the bound; after the restart a re-run resumes, identical', async () => {
      const name = `kill-long-${Date.now()}`;
      const { r, p } = await connectFk(TIMEOUT_MS);
      let run: Awaited<ReturnType<typeof copyFaultedAfterCheckpoint>> | undefined;
      try {
        run = await copyFaultedAfterCheckpoint(fk, p, name, killOsd);
      } finally {
        if (run?.faultAt) await restartOsd(kdir!, 'fk');
        await r.close();
      }
      const { res, faultAt: killedAt, settledAt, doneAtFault } = run;
      expect(killedAt, 'the copy ended before the OSD could be killed').toBeGreaterThan(0);
      expect(doneAtFault, 'the OSD was killed after the data phase').toBeLessThan(SRC_SIZE);
      expect(res.error?.code, String(res.error)).toBe('ETIMEDOUT');
      expect(res.error!.message).toMatch(/timed out.*OSD down or hung/);
      console.log(`[faults] killed target OSD: rejected ${settledAt - killedAt} ms after the kill: ${res.error?.message}`);
      expect(settledAt - killedAt).toBeLessThan(BOUND_MS);
      await rerunResumesIdentical(fk, name);
    });
  });

  it('target pool over quota: a clear error within the timeout; after the quota is lifted a re-run completes', async () => {
    const pool = `rquota${Date.now().toString(36)}`;
    const name = 'dst';
    await cephCli(fx, ['osd', 'pool', 'create', pool, '8']);
    await rbdCli(fx, ['pool', 'init', pool]);
    await rbdCli(fx, ['--no-progress', 'import', '-', `${pool}/filler`], { input: randomBytes(2 * MiB) });
    await cephCli(fx, ['osd', 'pool', 'set-quota', pool, 'max_bytes', String(MiB)]);
    await waitPoolFlag(pool, true);
    const r = await Rados.connect({ conf: fx.conf, keyring: fx.keyring, user: fx.user, timeoutMs: TIMEOUT_MS });
    let res;
    try {
      const p = await r.openPool(pool);
      res = await timed(replicate({ ...opts(p, name) }));
    } finally {
      await r.close();
    }
    expect(res.error, 'replicate into a full pool must fail').toBeInstanceOf(Error);
    expect(['ETIMEDOUT', 'EDQUOT', 'ENOSPC']).toContain(res.error!.code);
    expect(res.error!.message).toContain(pool);
    expect(res.ms).toBeLessThan(BOUND_MS * 2);

    await cephCli(fx, ['osd', 'pool', 'set-quota', pool, 'max_bytes', '0']);
    await waitPoolFlag(pool, false);
    const r2 = await Rados.connect({ conf: fx.conf, keyring: fx.keyring, user: fx.user, timeoutMs: 20_000 });
    try {
      const p = await r2.openPool(pool);
      // A failed create may have left an empty image without identity: the re-run takes it over.
      await replicate({ ...opts(p, name) });
    } finally {
      await r2.close();
    }
    expect(await rbdExportMd5(fx, `${pool}/${name}@base`)).toBe(srcMd5);
    await cephCli(fx, ['osd', 'pool', 'rm', pool, pool, '--yes-i-really-really-mean-it']);
  });

  it('source written during the copy: the target equals the snapshot', async () => {
    const name = `rep-live-${Date.now()}`;
    const { r, p } = await target(20_000);
    let writes = 0;
    try {
      let writer: Promise<void> | undefined;
      let stop = false;
      await replicate({
        ...opts(p, name),
        concurrency: 1,
        onProgress: () => {
          writer ??= (async () => {
            // Overwrite the head everywhere while the copy runs.
            while (!stop) {
              await src.write(randomBytes(MiB), (writes % 48) * MiB);
              writes++;
            }
          })();
        },
      }).finally(async () => { stop = true; await writer; });
    } finally {
      await r.close();
    }
    expect(writes).toBeGreaterThan(2);
    expect(await rbdExportMd5(A, `${A.pool}/${srcName}@base`)).toBe(srcMd5);
    expect(await rbdExportMd5(fx, `${name}@base`)).toBe(srcMd5);
    expect(await rbdExportMd5(A, `${A.pool}/${srcName}`)).not.toBe(srcMd5); // the head did change
  });

  it('close() of the target connection with a copy in flight: rejects, no crash; a re-run completes', async () => {
    const name = `rep-close-${Date.now()}`;
    const { r, p } = await target(20_000);
    let closing: Promise<void> | undefined;
    const res = await timed(replicate({
      ...opts(p, name),
      concurrency: 1,
      onProgress: (ev) => { if (ev.bytesDone >= 4 * MiB) closing ??= r.close(); },
    }));
    await closing;
    expect(closing, 'the copy ended before close() was called').toBeDefined();
    expect(res.error, 'replicate must not succeed after its target connection closed').toBeInstanceOf(Error);
    // close() stops the copy (it does not wait for the whole of it) and says so.
    expect(res.error!.code, String(res.error)).toBe('ERR_CLOSED');
    expect(r.closed && p.closed).toBe(true);
    const again = await target(20_000);
    try {
      await replicate({ ...opts(again.p, name) });
    } finally {
      await again.r.close();
    }
    expect(await rbdExportMd5(fx, `${name}@base`)).toBe(srcMd5);
  });

  it('two replicates into the same target from two processes: the second is refused with EBUSY', async () => {
    const name = `rep-two-${Date.now()}`;
    const child = spawn(process.execPath, ['--import', 'tsx', join(import.meta.dirname, '..', 'support', 'fixtures', 'replicate-child.ts')], {
      env: {
        ...process.env,
        CHILD_A: JSON.stringify(A), CHILD_B: JSON.stringify(fx), CHILD_SRC: srcName, CHILD_DST: name,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    const exited = new Promise<number | null>((res) => child.on('exit', (code) => res(code)));
    try {
      // Wait until the child is copying (its checkpoint is on the target).
      const deadline = Date.now() + 60_000;
      let copying = false;
      while (!copying && Date.now() < deadline && child.exitCode === null) {
        const meta = await rbdCli(fx, ['image-meta', 'get', `${fx.pool}/${name}`, 'rbd-stream.checkpoint']).catch(() => '');
        copying = meta !== '' && JSON.parse(meta).doneOffset > 0;
        if (!copying) await sleep(50);
      }
      expect(copying, `child never started copying: ${err}`).toBe(true);
      const { r, p } = await target(10_000);
      try {
        const e = await replicate({ ...opts(p, name) }).catch((x) => x);
        expect(e.code, String(e)).toBe('EBUSY');
        expect(e.message).toMatch(/locked by another client|in progress/);
      } finally {
        await r.close();
      }
      expect(await exited, err).toBe(0);
      expect(out).toContain('done');
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
    }
    expect(await rbdExportMd5(fx, `${name}@base`)).toBe(srcMd5);
  });

  it('`rbd-stream sync` SIGKILLed mid-copy: a re-run resumes the same round; target identical', async () => {
    const name = `sync-kill-${Date.now()}`;
    const cli = join(import.meta.dirname, '..', '..', 'lib', 'cli', 'main.ts');
    const args = ['--import', 'tsx', cli, '--json', 'sync', '-c', A.conf, ...(A.keyring ? ['--keyring', A.keyring] : []),
      '--dest-conf', fx.conf, '--dest-keyring', fx.keyring!, '--concurrency', '1',
      `${A.pool}/${srcName}`, `${fx.pool}/${name}`];
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let err = '';
    child.stderr.on('data', (d) => (err += d));
    child.stdout.on('data', (d) => (err += d));
    const exited = new Promise<void>((res) => child.on('exit', (code, sig) => { err += ` (exit ${code ?? sig})`; res(); }));
    // Slow the target down (OSD stopped ~97% of the time) so the copy outlives its first
    // checkpoint (every 2 s); kill the process once a checkpoint with progress is on the target.
    let throttling = true;
    const throttle = (async () => {
      while (throttling) {
        osd('SIGSTOP');
        await sleep(900);
        osd('SIGCONT');
        await sleep(30);
      }
    })();
    let checkpoint: { doneOffset: number } | undefined;
    // Watch the target's checkpoint through our own connection (a CLI per poll is too slow).
    const watcher = await target(30_000);
    try {
      const deadline = Date.now() + 90_000;
      let t: Image | undefined;
      while (Date.now() < deadline && child.exitCode === null) {
        if (!t && (await watcher.p.listImages()).includes(name)) t = await watcher.p.openImage(name, { readOnly: true });
        const meta = t ? await t.getMetadata('rbd-stream.checkpoint') : undefined;
        if (meta && JSON.parse(meta).doneOffset > 0) {
          child.kill('SIGKILL');
          checkpoint = JSON.parse(meta);
          break;
        }
        await sleep(20);
      }
    } finally {
      await watcher.r.close();
      throttling = false;
      await throttle;
      osd('SIGCONT');
      if (child.exitCode === null) child.kill('SIGKILL');
      await exited;
      await resumeOsd(); // the re-run below must not meet ops parked by the pauses
    }
    expect(checkpoint, `sync ended before it could be killed: ${err}`).toBeDefined();
    expect(checkpoint!.doneOffset).toBeLessThan(SRC_SIZE);
    const snapsBefore = (await rbdCli(A, ['snap', 'ls', '--format', 'json', `${A.pool}/${srcName}`]));
    const synced = JSON.parse(snapsBefore).filter((x: { name: string }) => x.name.startsWith('rbd-sync-'));
    expect(synced).toHaveLength(1);

    const rerun = await runCli(args.slice(0), 120_000);
    expect(rerun.code, rerun.err).toBe(0);
    const r = JSON.parse(rerun.out);
    expect(r.mode).toBe('full');
    expect(r.resumed).toBe(true);
    expect(r.snapshot).toBe(synced[0].name); // the killed round's snapshot, not a new one
    expect(r.bytesRead).toBeLessThan(SRC_SIZE);
    expect(await rbdExportMd5(fx, `${name}@${r.snapshot}`)).toBe(await rbdExportMd5(A, `${A.pool}/${srcName}@${r.snapshot}`));
  }, 180_000);
});

function runCli(args: string[], timeoutMs: number): Promise<{ out: string; err: string; code: number | null }> {
  return new Promise((res, rej) => {
    const ch = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    const timer = setTimeout(() => ch.kill('SIGKILL'), timeoutMs);
    ch.stdout.on('data', (d) => (out += d));
    ch.stderr.on('data', (d) => (err += d));
    ch.on('error', (e) => { clearTimeout(timer); rej(e); });
    ch.on('close', (code) => { clearTimeout(timer); res({ out, err, code }); });
  });
}
