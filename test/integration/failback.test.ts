// Over 450 lines: failback and failover (image, pool, CLI) share one synced-pair fixture and its clusters.
// Failback for snapshot sync: syncing back from the copy in use (B) to the returning original (A),
// with the common snapshot proven by the identity the SOURCE recorded; the rbd CLI is the oracle.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Rados, type Image, type Pool } from '../../lib/index.js';
import { syncImage, syncPool, type SyncResult } from '../../lib/transfer/sync.js';
import { replicate } from '../../lib/transfer/replicate/run.js';
import { syncFailover } from '../../lib/transfer/sync-failover.js';
import { IDENTITY_KEY_PREFIX, identityKey } from '../../lib/transfer/identity.js';
import { discardedChanges, MAX_DISCARDED_RANGES } from '../../lib/transfer/replicate/target.js';
import { clusterArgs, getClusters, rbdCli, rbdExportMd5, type TestCluster } from '../support/clusters.js';
import { onTerminal } from '../support/terminal.js';
import { destArgs, runRbdStream as cli } from '../support/cli-process.js';
import { startReplicateChild } from '../support/replicate-child.js';

const { a, b } = getClusters() as { a: TestCluster; b: TestCluster };
const tag = `fb${process.pid}`;
const MiB = 1 << 20;
const KiB = 1024;

let ra: Rados;
let rb: Rados;
let pa: Pool;
let pb: Pool;
const made: [TestCluster, string][] = [];

async function rmImage(c: TestCluster, name: string) {
  await rbdCli(c, ['snap', 'purge', '--no-progress', `${c.pool}/${name}`]).catch(() => {});
  await rbdCli(c, ['rm', '--no-progress', `${c.pool}/${name}`]).catch(() => {});
}

const md5 = (c: TestCluster, spec: string) => rbdExportMd5(c, `${c.pool}/${spec}`);

/** Writes `len` bytes of `byte` at each offset; returns the bytes written. */
async function scribble(img: Image, offsets: number[], len: number, byte: number): Promise<number> {
  for (const off of offsets) await img.write(Buffer.alloc(len, byte), off);
  await img.flush();
  return offsets.length * len;
}

/** Offset/length ranges with adjacent ones merged, sorted: the byte coverage they describe. */
function coverage(ranges: { offset: number; length: number }[]): [number, number][] {
  const out: [number, number][] = [];
  for (const r of [...ranges].sort((x, y) => x.offset - y.offset)) {
    const last = out[out.length - 1];
    if (last && last[0] + last[1] >= r.offset) last[1] = Math.max(last[1], r.offset + r.length - last[0]);
    else out.push([r.offset, r.length]);
  }
  return out;
}

/** An image on A synced to B `rounds` times (A written before each round); A's handle stays open. */
async function syncedPair(name: string, rounds: number): Promise<{ imgA: Image; results: SyncResult[] }> {
  made.push([a, name], [b, name]);
  await pa.createImage(name, 8 * MiB);
  const imgA = await pa.openImage(name);
  const results: SyncResult[] = [];
  for (let i = 0; i < rounds; i++) {
    await scribble(imgA, [i * MiB, i * MiB + 3 * MiB], 128 * KiB, 0x10 + i);
    results.push(await syncImage({ source: imgA, target: { pool: pb } }));
  }
  expect(results.map((r) => r.mode)).toEqual(['full', ...Array(rounds - 1).fill('incremental')]);
  return { imgA, results };
}

beforeAll(async () => {
  ra = await Rados.connect({ conf: a.conf, keyring: a.keyring, user: a.user });
  rb = await Rados.connect({ conf: b.conf, keyring: b.keyring, user: b.user });
  pa = await ra.openPool(a.pool);
  pb = await rb.openPool(b.pool);
});

afterAll(async () => {
  for (const [c, n] of made) await rmImage(c, n);
  await ra?.close();
  await rb?.close();
});

describe('failback (syncImage B→A)', () => {
  it('DR drill: copies only what B wrote since the last common snapshot; later rounds resume both ways', async () => {
    const name = `${tag}-drill`;
    const { imgA, results } = await syncedPair(name, 3);
    const common = results[2].snapshot;
    // Disaster: A is gone; the operator works on B.
    await imgA.close();
    const imgB = await pb.openImage(name);
    let back: SyncResult;
    try {
      // Inside each object's written extent: librbd's diff reports an object's growth (the gap up to
      // a write past its end) as changed, which would inflate the copy beyond what was written.
      const wroteOnB = await scribble(imgB, [512 * KiB, 2 * MiB + 512 * KiB, 4 * MiB + 4 * KiB], 64 * KiB, 0xb1);
      // A is back: fail back B → A.
      back = await syncImage({ source: imgB, target: { pool: pa } });
      expect(back.mode).toBe('incremental');
      expect(back.base).toBe(common);
      expect(back.discarded).toBeUndefined(); // not forced
      expect(back.bytesWritten + back.bytesZeroed).toBeGreaterThanOrEqual(wroteOnB);
      expect(back.bytesWritten + back.bytesZeroed).toBeLessThanOrEqual(2 * wroteOnB);
      expect(await md5(a, name)).toBe(await md5(b, name));
      expect(await md5(a, `${name}@${back.snapshot}`)).toBe(await md5(b, `${name}@${back.snapshot}`));
      // Pruned on B (the source now): the snapshot and its identity record went together.
      expect(back.pruned.source).toEqual([results[0].snapshot]);
      const keys = Object.keys(await imgB.listMetadata()).filter((k) => k.startsWith(IDENTITY_KEY_PREFIX));
      expect(keys.sort()).toEqual([results[1].snapshot, results[2].snapshot].map(identityKey));
    } finally {
      await imgB.close();
    }

    // A is primary again: A → B resumes incrementally from the snapshot B made and copied to A.
    const imgA2 = await pa.openImage(name);
    try {
      const wroteOnA = await scribble(imgA2, [2 * MiB], 32 * KiB, 0xa2);
      const fwd1 = await syncImage({ source: imgA2, target: { pool: pb } });
      expect(fwd1).toMatchObject({ mode: 'incremental', base: back.snapshot });
      expect(fwd1.bytesWritten + fwd1.bytesZeroed).toBeLessThanOrEqual(2 * wroteOnA);
      expect(await md5(b, name)).toBe(await md5(a, name));
      await scribble(imgA2, [4 * MiB + 512 * KiB], 32 * KiB, 0xa3);
      const fwd2 = await syncImage({ source: imgA2, target: { pool: pb } });
      expect(fwd2).toMatchObject({ mode: 'incremental', base: fwd1.snapshot });
      expect(fwd2.bytesWritten + fwd2.bytesZeroed).toBeLessThanOrEqual(2 * 32 * KiB);
      expect(await md5(b, name)).toBe(await md5(a, name));
    } finally {
      await imgA2.close();
    }
    // And back once more (B's newest snapshot is a recorded copy of A's: the reverse proof again).
    const imgB2 = await pb.openImage(name);
    try {
      await scribble(imgB2, [MiB], 16 * KiB, 0xb3);
      const back2 = await syncImage({ source: imgB2, target: { pool: pa } });
      expect(back2.mode).toBe('incremental');
      expect(back2.bytesWritten + back2.bytesZeroed).toBeLessThanOrEqual(2 * 16 * KiB);
      expect(await md5(a, name)).toBe(await md5(b, name));
    } finally {
      await imgB2.close();
    }
  });

  it('split-brain: A changed too: ERR_TARGET_CHANGED without force; with force A == B and the discarded ranges are reported', async () => {
    const name = `${tag}-split`;
    const { imgA, results } = await syncedPair(name, 2);
    const common = results[1].snapshot;
    try {
      // Both sites written after the last common snapshot; A also zeroes a range.
      await scribble(imgA, [64 * KiB, 4 * MiB + 8 * KiB], 20 * KiB, 0xaa);
      await imgA.writeZeroes(6 * MiB, 128 * KiB);
      await imgA.flush();
    } finally {
      await imgA.close();
    }
    const expected = JSON.parse(await rbdCli(a, ['diff', '--from-snap', common, '--format', 'json', `${a.pool}/${name}`])) as { offset: number; length: number }[];
    expect(expected.length).toBeGreaterThan(0);
    const headA = await md5(a, name);
    const imgB = await pb.openImage(name);
    try {
      await scribble(imgB, [64 * KiB, 7 * MiB], 40 * KiB, 0xbb);
      const refused = await syncImage({ source: imgB, target: { pool: pa } }).catch((e: unknown) => e);
      expect(refused).toMatchObject({ code: 'ERR_TARGET_CHANGED', image: name, pool: a.pool });
      expect((refused as Error).message).toContain(`${a.pool}/${name}`);
      expect(await md5(a, name)).toBe(headA); // nothing written
      const forced = await syncImage({ source: imgB, target: { pool: pa }, force: true });
      expect(forced).toMatchObject({ mode: 'incremental', base: common });
      expect(await md5(a, name)).toBe(await md5(b, name));
      const d = forced.discarded!;
      expect(d.truncated).toBe(false);
      expect(d.count).toBe(d.ranges.length);
      expect(coverage(d.ranges)).toEqual(coverage(expected));
      expect(d.bytes).toBe(coverage(expected).reduce((n, [, len]) => n + len, 0));
    } finally {
      await imgB.close();
    }
  });

  it('a same-named snapshot without a recorded identity is not common (ERR_NO_COMMON_SNAPSHOT; replicate: ERR_WRONG_BASE)', async () => {
    const name = `${tag}-noid`;
    made.push([a, name], [b, name]);
    const snap = 'rbd-sync-20200101T000000.000Z';
    await pa.createImage(name, 4 * MiB);
    await pb.createImage(name, 4 * MiB);
    const imgA = await pa.openImage(name);
    const imgB = await pb.openImage(name);
    try {
      await imgA.createSnapshot(snap);
      await imgB.createSnapshot(snap);
      await scribble(imgB, [0], 4 * KiB, 1);
      await expect(syncImage({ source: imgB, target: { pool: pa } })).rejects.toMatchObject({ code: 'ERR_NO_COMMON_SNAPSHOT' });
      await imgB.createSnapshot('next');
      await expect(replicate({ source: imgB, fromSnapshot: snap, toSnapshot: 'next', target: imgA })).rejects.toMatchObject({ code: 'ERR_WRONG_BASE' });
    } finally {
      await imgA.close();
      await imgB.close();
    }
  });

  it('a recreated snapshot breaks the reverse proof on either side; the next older proven one is the base', async () => {
    const name = `${tag}-recr`;
    const { imgA, results } = await syncedPair(name, 3);
    const [s1, s2, s3] = results.map((r) => r.snapshot);
    try {
      // On A (the target of the failback): s3 recreated under its name: B's record names the old one.
      await imgA.removeSnapshot(s3);
      await imgA.createSnapshot(s3);
    } finally {
      await imgA.close();
    }
    const imgB = await pb.openImage(name);
    try {
      // On B (the source): s2 recreated: B's record is bound to the snapshot replicate made.
      await imgB.removeSnapshot(s2);
      await imgB.createSnapshot(s2);
      // replicate refuses both as bases.
      await imgB.createSnapshot('probe');
      for (const from of [s2, s3]) {
        await expect(replicate({ source: imgB, fromSnapshot: from, toSnapshot: 'probe', target: { pool: pa, name } }))
          .rejects.toMatchObject({ code: 'ERR_WRONG_BASE' });
      }
      await imgB.removeSnapshot('probe');
      // sync falls back to s1, still proven; A's head equals A@s3 (= s1's data + rounds 2-3), so it is forced.
      await expect(syncImage({ source: imgB, target: { pool: pa } })).rejects.toMatchObject({ code: 'ERR_TARGET_CHANGED' });
      const r = await syncImage({ source: imgB, target: { pool: pa }, force: true, keep: { source: 10, target: 10 } });
      expect(r).toMatchObject({ mode: 'incremental', base: s1 });
      expect(r.discarded!.bytes).toBeGreaterThan(0);
      expect(await md5(a, name)).toBe(await md5(b, name));
    } finally {
      await imgB.close();
    }
  });
});

describe('discarded ranges report', () => {
  it('merges adjacent ranges and caps the list, counting all ranges and bytes', () => {
    const n = MAX_DISCARDED_RANGES + 500;
    const pairs: number[] = [];
    // Each range followed by an adjacent one (merged), then a gap.
    for (let i = 0; i < n; i++) pairs.push(i * 65536, 4096, i * 65536 + 4096, 512);
    const d = discardedChanges(Float64Array.from(pairs));
    expect(d).toMatchObject({ count: n, bytes: n * 4608, truncated: true });
    expect(d.ranges).toHaveLength(MAX_DISCARDED_RANGES);
    expect(d.ranges[1]).toEqual({ offset: 65536, length: 4608 });
    expect(discardedChanges(undefined)).toEqual({ ranges: [], count: 0, bytes: 0, truncated: false });
  });
});

describe('failback (syncPool B→A)', () => {
  it('fails back two images, then A → B resumes incrementally', async () => {
    const names = [1, 2].map((i) => `${tag}-pool-${i}`);
    for (const n of names) {
      made.push([a, n], [b, n]);
      await pa.createImage(n, 4 * MiB);
      const img = await pa.openImage(n);
      await scribble(img, [MiB], 256 * KiB, n.charCodeAt(n.length - 1));
      await img.close();
    }
    const images = `${tag}-pool-*`;
    for (let i = 0; i < 2; i++) expect((await syncPool({ source: pa, target: pb, images })).summary).toMatchObject({ total: 2, ok: 2 });
    for (const n of names) {
      const img = await pb.openImage(n);
      await scribble(img, [MiB + 64 * KiB], 48 * KiB, 0xcc);
      await img.close();
    }
    const back = await syncPool({ source: pb, target: pa, images });
    expect(back.summary).toMatchObject({ total: 2, ok: 2, failed: 0 });
    for (const x of back.images) {
      expect(x.ok && x.mode).toBe('incremental');
      if (x.ok) expect(x.bytesWritten + x.bytesZeroed).toBeLessThanOrEqual(2 * 48 * KiB);
      expect(await md5(a, x.name)).toBe(await md5(b, x.name));
    }
    const fwd = await syncPool({ source: pa, target: pb, images });
    expect(fwd.summary).toMatchObject({ total: 2, ok: 2, failed: 0, bytesWritten: 0 });
    expect(fwd.images.every((x) => x.ok && x.mode === 'incremental')).toBe(true);
  });
});

// --- CLI -------------------------------------------------------------------------------------

describe('rbd-stream failback', () => {
  it('without --writers-stopped and no TTY: refused (exit 4, ERR_WRITERS_NOT_STOPPED), nothing done; with it: A == B', async () => {
    const name = `${tag}-cli`;
    const { imgA, results } = await syncedPair(name, 2);
    await imgA.close();
    const imgB = await pb.openImage(name);
    try {
      await scribble(imgB, [3 * MiB], 96 * KiB, 0xdd);
    } finally {
      await imgB.close();
    }
    const snapsB = await rbdCli(b, ['snap', 'ls', '--format', 'json', `${b.pool}/${name}`]);
    const spec = ['--json', 'failback', ...clusterArgs(b), ...destArgs(a), `${b.pool}/${name}`, `${a.pool}/${name}`];

    const refused = await cli(spec);
    expect(refused.code).toBe(4);
    expect(JSON.parse(refused.stdout)).toMatchObject({ error: { code: 'ERR_WRITERS_NOT_STOPPED' } });
    expect(await rbdCli(b, ['snap', 'ls', '--format', 'json', `${b.pool}/${name}`])).toBe(snapsB); // nothing snapshotted
    const text = await cli(spec.slice(1));
    expect(text.code).toBe(4);
    expect(text.stderr).toMatch(/--writers-stopped/);

    const ok = await cli([...spec, '--writers-stopped']);
    expect(ok.stderr).toBe('');
    expect(ok.code).toBe(0);
    const j = JSON.parse(ok.stdout) as {
      source: string; target: string; writersStopped: string; current: boolean; snapshot: string;
      rounds: { final: SyncResult; last: SyncResult };
    };
    expect(j).toMatchObject({ source: `${b.pool}/${name}`, target: `${a.pool}/${name}`, writersStopped: 'flag', current: true });
    expect(j.rounds.final).toMatchObject({ mode: 'incremental', base: results[1].snapshot });
    expect(j.rounds.final.bytesWritten + j.rounds.final.bytesZeroed).toBeLessThanOrEqual(2 * 96 * KiB);
    expect(j.rounds.last).toMatchObject({ mode: 'incremental', base: j.rounds.final.snapshot, bytesWritten: 0, bytesZeroed: 0 });
    expect(j.snapshot).toBe(j.rounds.last.snapshot);
    expect(await md5(a, name)).toBe(await md5(b, name));
  });

  it('on a terminal it asks: any answer but yes stops after the first sync (exit 4); yes finishes (exit 0)', async () => {
    const name = `${tag}-tty`;
    const { imgA } = await syncedPair(name, 1);
    await imgA.close();
    const args = ['failback', ...clusterArgs(b), ...destArgs(a), `${b.pool}/${name}`, `${a.pool}/${name}`];
    const no = await onTerminal(args, 'no');
    expect(no.code).toBe(4);
    expect(no.out).toMatch(/Stop every writer of .*type 'yes'/);
    expect(no.out).toMatch(/ERR_WRITERS_NOT_STOPPED/);
    expect(no.out).not.toMatch(/step 3\/3/);
    const img = await pb.openImage(name);
    try {
      await scribble(img, [64 * KiB], 16 * KiB, 0x77);
    } finally {
      await img.close();
    }
    const yes = await onTerminal(args, 'yes');
    expect(yes.code).toBe(0);
    expect(yes.out).toMatch(/step 2\/3: writers stopped \(confirmed\)/);
    expect(yes.out).toMatch(/is current/);
    expect(await md5(a, name)).toBe(await md5(b, name));
  });

  it('--pool with --force: text output names the discarded ranges; A == B', async () => {
    const name = `${tag}-clipool`;
    const { imgA } = await syncedPair(name, 1);
    try {
      await scribble(imgA, [MiB], 8 * KiB, 0xee); // A changed after the common snapshot
    } finally {
      await imgA.close();
    }
    const args = ['failback', ...clusterArgs(b), ...destArgs(a), '--pool', '--images', name, '--writers-stopped', b.pool, a.pool];
    const refused = await cli(args);
    expect(refused.code).toBe(3); // the image failed (ERR_TARGET_CHANGED): stopped after step 1
    expect(refused.stdout).toMatch(/FAILED .*ERR_TARGET_CHANGED/);
    const ok = await cli([...args, '--force']);
    expect(ok.code).toBe(0);
    expect(ok.stdout).toContain(`discarded on ${a.pool}/${name}: 1 range, 8.00 KiB: ${MiB}+${8 * KiB}`);
    expect(ok.stdout).toMatch(/all 1 images are current/);
    expect(await md5(a, name)).toBe(await md5(b, name));
    // Again with --json: nothing left to copy; one result per image and round.
    const again = await cli(['--json', ...args]);
    expect(again.code).toBe(0);
    const j = JSON.parse(again.stdout) as { writersStopped: string; current: boolean; images: { name: string; current: boolean; snapshot: string }[]; rounds: { final: { summary: object }; last: { images: SyncResult[]; summary: object } } };
    expect(j).toMatchObject({ writersStopped: 'flag', current: true, images: [{ name, current: true }] });
    expect(j.rounds.final.summary).toMatchObject({ total: 1, ok: 1, failed: 0, bytesWritten: 0 });
    expect(j.rounds.last.summary).toMatchObject({ total: 1, ok: 1, failed: 0, bytesWritten: 0 });
    expect(j.images[0].snapshot).toBe(j.rounds.last.images[0].snapshot);
  });
});

describe('rbd-stream failover (snapshot sync, A lost)', () => {
  it('rolls back what an interrupted round left on B and drops its checkpoint, so a later A → B round refuses B\'s own writes instead of resuming over them', async () => {
    const name = `${tag}-fo`;
    const { imgA, results } = await syncedPair(name, 2);
    try {
      // A third round dies mid-copy: B's head holds part of it, and its checkpoint.
      await scribble(imgA, [0], 4 * MiB, 0x77);
      const ac = new AbortController();
      await expect(syncImage({ source: imgA, target: { pool: pb }, bandwidth: 2 * MiB, signal: ac.signal, onProgress: () => ac.abort() }))
        .rejects.toMatchObject({ code: 'ABORT_ERR' });
      expect(await rbdCli(b, ['image-meta', 'get', `${b.pool}/${name}`, 'rbd-stream.checkpoint'])).toMatch(/doneOffset/);
      expect(await md5(b, name)).not.toBe(await md5(b, `${name}@${results[1].snapshot}`));

      const r = await cli(['--json', 'failover', ...clusterArgs(b), `${b.pool}/${name}`]);
      expect(r.code, r.stderr).toBe(0);
      expect(JSON.parse(r.stdout)).toEqual({ ok: true, name, snapshot: results[1].snapshot, rolledBack: true, checkpointRemoved: true });
      expect(await md5(b, name)).toBe(await md5(b, `${name}@${results[1].snapshot}`));
      await expect(rbdCli(b, ['image-meta', 'get', `${b.pool}/${name}`, 'rbd-stream.checkpoint'])).rejects.toThrow();
      // B is used: a workload holds the lock. Failover again: nothing to do, the workload is left alone
      // (the mark is read before any lock is taken).
      const imgB = await pb.openImage(name);
      await scribble(imgB, [6 * MiB], 64 * KiB, 0x42);
      const again = await cli(['--json', 'failover', ...clusterArgs(b), `${b.pool}/${name}`]);
      expect(again.code, again.stderr).toBe(0);
      expect(JSON.parse(again.stdout)).toMatchObject({ rolledBack: false, checkpointRemoved: false, failedOverAt: expect.any(String) });
      await imgB.close();

      // Somebody starts the A → B schedule again by mistake: refused, B's write kept.
      const before = await md5(b, name);
      await expect(syncImage({ source: imgA, target: { pool: pb } })).rejects.toMatchObject({ code: 'ERR_TARGET_CHANGED' });
      expect(await md5(b, name)).toBe(before);
      // The way back: failback B → A, incremental from the round B stands at.
      const back = await pb.openImage(name);
      try {
        const fb = await syncImage({ source: back, target: { pool: pa }, force: true });
        expect(fb).toMatchObject({ mode: 'incremental', base: results[1].snapshot });
        expect(await md5(a, `${name}@${fb.snapshot}`)).toBe(await md5(b, `${name}@${fb.snapshot}`));
      } finally {
        await back.close();
      }
    } finally {
      await imgA.close();
    }
  });

  it('a round killed mid-copy (SIGKILL) leaves its lock record: refused while the dead client still watches, then its lock is taken and the copy rolled back', async () => {
    const name = `${tag}-fok`;
    const { imgA, results } = await syncedPair(name, 1);
    // The whole image: 8 s at the child's 1 MiB/s, time for several checkpoints (one every 2 s).
    await scribble(imgA, [0], 8 * MiB, 0x66);
    const { process: child, stderr, exited } = startReplicateChild({ CHILD_SYNC: '1', CHILD_A: JSON.stringify(a), CHILD_B: JSON.stringify(b), CHILD_SRC: name, CHILD_DST: name });
    const imgB = await pb.openImage(name);
    try {
      // Killed once the round has written part of its copy on B (and holds B's lock).
      const deadline = Date.now() + 60_000;
      for (;;) {
        const meta = await imgB.getMetadata('rbd-stream.checkpoint');
        if (meta !== undefined && JSON.parse(meta).doneOffset >= MiB) break;
        expect(child.exitCode, `the round ended before it was killed: ${stderr()}`).toBeNull();
        expect(Date.now()).toBeLessThan(deadline);
        await new Promise((r) => setTimeout(r, 50));
      }
      child.kill('SIGKILL');
      await exited;
      const owner = (await imgB.getLockOwners())!.owners[0];
      console.log(`[failover] after SIGKILL: owner ${owner}, watchers ${JSON.stringify(await imgB.listWatchers())}`);
      expect(owner).toBeDefined();
      // The OSD has not expired the dead client's watch yet: it looks alive, and is refused.
      const early = await syncFailover({ pool: pb, images: [name] });
      expect(early.images[0]).toMatchObject({ ok: false, error: { code: 'EBUSY', message: expect.stringMatching(/still watches the image/) } });
      // Once its watch is gone its lock record is still there (a check of lock owners alone refuses
      // for good), but nobody holds it: failover takes it and rolls back.
      const t0 = Date.now();
      while ((await imgB.listWatchers()).some((w) => w.address === owner)) {
        expect(Date.now() - t0, 'the dead client still watches').toBeLessThan(90_000);
        await new Promise((r) => setTimeout(r, 1000));
      }
      expect((await imgB.getLockOwners())?.owners).toEqual([owner]);
      const r = await syncFailover({ pool: pb, images: [name] });
      expect(r.images[0]).toEqual({ ok: true, name, snapshot: results[0].snapshot, rolledBack: true, checkpointRemoved: true });
      expect(await md5(b, name)).toBe(await md5(b, `${name}@${results[0].snapshot}`));
      expect((await imgB.getLockOwners())?.owners ?? []).not.toContain(owner);
    } finally {
      child.kill('SIGKILL');
      await imgB.close();
      await imgA.close();
    }
  });

  it('refusals: a live client holds the lock (EBUSY), B written without an interrupted round (ERR_TARGET_CHANGED); --force; a pool with --images', async () => {
    const names = [`${tag}-fo1`, `${tag}-fo2`];
    const pairs = [await syncedPair(names[0], 1), await syncedPair(names[1], 1)];
    try {
      // Open by another client that holds no lock (nothing written yet): a rollback would change the
      // data under it too.
      const reader = await Rados.connect({ conf: b.conf, keyring: b.keyring, user: b.user });
      try {
        const img = await (await reader.openPool(b.pool)).openImage(names[1]);
        const open = await syncFailover({ pool: pb, images: [names[1]] });
        expect(open.images[0]).toMatchObject({ ok: false, error: { code: 'EBUSY', message: expect.stringMatching(new RegExp(`open by client\\.${reader.instanceId()} `)) } });
        await img.close();
      } finally {
        await reader.close();
      }
      const imgB = await pb.openImage(names[0]);
      await scribble(imgB, [MiB], 64 * KiB, 0x55); // holds the exclusive lock while open
      const busy = await cli(['--json', 'failover', ...clusterArgs(b), `${b.pool}/${names[0]}`]);
      expect(busy.code).toBe(4);
      expect(JSON.parse(busy.stdout).error).toMatchObject({ code: 'EBUSY', message: expect.stringMatching(/holds its exclusive lock/) });
      await imgB.close();
      const changed = await cli(['--json', 'failover', ...clusterArgs(b), `${b.pool}/${names[0]}`]);
      expect(changed.code).toBe(4);
      expect(JSON.parse(changed.stdout).error.code).toBe('ERR_TARGET_CHANGED');

      const pool = await cli(['--json', 'failover', ...clusterArgs(b), '--pool', b.pool, '--images', names.join(','), '--force']);
      expect(pool.code, pool.stderr).toBe(0);
      const j = JSON.parse(pool.stdout);
      expect(j.summary).toEqual({ total: 2, ok: 2, failed: 0, rolledBack: 1 });
      expect(j.images.map((x: { name: string; rolledBack: boolean }) => [x.name, x.rolledBack])).toEqual([[names[0], true], [names[1], false]]);
      for (const [i, n] of names.entries()) expect(await md5(b, n)).toBe(await md5(b, `${n}@${pairs[i].results[0].snapshot}`));
      const usage = await cli(['--json', 'failover', ...clusterArgs(b), '--images', 'x', `${b.pool}/${names[0]}`]);
      expect(usage.code).toBe(2);
    } finally {
      for (const p of pairs) await p.imgA.close();
    }
  });
});
