// syncImage rounds with pruning, syncPool with a failing image; the rbd CLI is the oracle.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Rados, type Pool } from '../../lib/index.js';
import { syncImage, syncPool, syncSnapshotName } from '../../lib/transfer/sync.js';
import { identityKey, readIdentity } from '../../lib/transfer/identity.js';
import { takeLease } from '../../lib/transfer/lease.js';
import { getClusters, rbdCli, rbdExportMd5, type TestCluster } from '../support/clusters.js';
import { writeDelayedConf } from '../support/delay.js';
import { startReplicateChild } from '../support/replicate-child.js';

const { a, b } = getClusters() as { a: TestCluster; b: TestCluster };
const tag = `sy${process.pid}`;
const MiB = 1 << 20;

let ra: Rados;
let rb: Rados;
let pa: Pool;
let pb: Pool;
const made: [TestCluster, string][] = [];

async function rmImage(c: TestCluster, name: string) {
  await rbdCli(c, ['snap', 'purge', '--no-progress', `${c.pool}/${name}`]).catch(() => {});
  await rbdCli(c, ['rm', '--no-progress', `${c.pool}/${name}`]).catch(() => {});
}

async function snapNames(c: TestCluster, name: string): Promise<string[]> {
  const list = JSON.parse(await rbdCli(c, ['snap', 'ls', '--format', 'json', `${c.pool}/${name}`])) as { name: string }[];
  return list.map((s) => s.name).sort();
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

describe('syncImage', () => {
  it('names sort by time', () => {
    const x = syncSnapshotName('p-', new Date('2024-01-31T23:59:59.123Z'));
    expect(x).toBe('p-20240131T235959.123Z');
    expect(syncSnapshotName('p-', new Date('2024-02-01T00:00:00.000Z')) > x).toBe(true);
  });

  it('replicates over 6 rounds (full, then incremental) and prunes both sides', async () => {
    const name = `${tag}-img`;
    made.push([a, name], [b, name]);
    await pa.createImage(name, 12 * MiB);
    const src = await pa.openImage(name);
    try {
      await src.createSnapshot('keep-me'); // not ours: never pruned
      const seen: string[] = [];
      for (let round = 0; round < 6; round++) {
        await src.write(Buffer.alloc(256 * 1024, 1 + round), round * 1.5 * MiB);
        if (round === 3) await src.writeZeroes(0, 512 * 1024);
        if (round === 4) await src.resize(16 * MiB);
        const progress: number[] = [];
        const r = await syncImage({
          source: src, target: { pool: pb }, keep: { source: 2, target: 3 }, verify: round % 2 === 1,
          onProgress: (p) => progress.push(p.bytesDone),
        });
        expect(r.mode).toBe(round === 0 ? 'full' : 'incremental');
        expect(r.base).toBe(round === 0 ? undefined : seen[seen.length - 1]);
        expect(r.snapshot.startsWith('rbd-sync-')).toBe(true);
        if (round > 0) expect(r.snapshot > seen[seen.length - 1]).toBe(true);
        seen.push(r.snapshot);
        expect(await rbdExportMd5(b, `${b.pool}/${name}@${r.snapshot}`)).toBe(await rbdExportMd5(a, `${a.pool}/${name}@${r.snapshot}`));
        // Pruning: source keeps 2, target keeps 3 of ours; foreign snapshots stay.
        const srcSnaps = await snapNames(a, name);
        const tgtSnaps = await snapNames(b, name);
        expect(srcSnaps).toEqual(['keep-me', ...seen.slice(-2)].sort());
        expect(tgtSnaps).toEqual(seen.slice(-3));
        expect(r.pruned.source).toEqual(round >= 2 ? [seen[round - 2]] : []);
        expect(r.pruned.target).toEqual(round >= 3 ? [seen[round - 3]] : []);
        // Identity records follow the target's snapshots.
        const tgt = await pb.openImage(name, { readOnly: true });
        try {
          expect((await readIdentity(tgt, r.snapshot))?.snapName).toBe(r.snapshot);
          const md = await tgt.listMetadata();
          expect(Object.keys(md).filter((k) => k.startsWith(identityKey('rbd-sync-'))).sort()).toEqual(seen.slice(-3).map(identityKey));
        } finally {
          await tgt.close();
        }
      }
      expect(await rbdExportMd5(b, `${b.pool}/${name}`)).toBe(await rbdExportMd5(a, `${a.pool}/${name}@${seen[5]}`));
    } finally {
      await src.close();
    }
  });

  it('refuses an unrelated existing target (ERR_NO_COMMON_SNAPSHOT) unless forced', async () => {
    const name = `${tag}-unrel`;
    made.push([a, name], [b, name]);
    await pa.createImage(name, 4 * MiB);
    await pb.createImage(name, 4 * MiB);
    const src = await pa.openImage(name);
    try {
      await src.write(Buffer.alloc(MiB, 9), 0);
      await expect(syncImage({ source: src, target: { pool: pb } })).rejects.toMatchObject({ code: 'ERR_NO_COMMON_SNAPSHOT' });
      const r = await syncImage({ source: src, target: { pool: pb }, force: true });
      expect(r.mode).toBe('full');
      expect(await rbdExportMd5(b, `${b.pool}/${name}@${r.snapshot}`)).toBe(await rbdExportMd5(a, `${a.pool}/${name}@${r.snapshot}`));
    } finally {
      await src.close();
    }
  });
});

describe('a first round stopped before it wrote anything (a source of zeros)', () => {
  // Zero runs are never written to a target the copy created, so such a round changes nothing on
  // the target but its existence: only the checkpoint written when it was created makes the image
  // recognisably this round's, so the next round resumes it instead of refusing an unrelated image.
  const SIZE = 32 * MiB;
  async function zeroSource(name: string) {
    made.push([a, name], [b, name]);
    await pa.createImage(name, SIZE);
    const img = await pa.openImage(name);
    await img.write(Buffer.alloc(SIZE), 0); // allocated (a diff lists it), yet all zeros
    return img;
  }
  const targetState = async (name: string) => ({
    snaps: await snapNames(b, name),
    allocated: JSON.parse(await rbdCli(b, ['diff', '--format', 'json', `${b.pool}/${name}`])) as unknown[],
    checkpoint: JSON.parse(await rbdCli(b, ['image-meta', 'get', `${b.pool}/${name}`, 'rbd-stream.checkpoint'])) as { doneOffset: number },
  });

  it('aborted: the empty target carries a checkpoint, and the next round resumes the same snapshot', async () => {
    const name = `${tag}-zabort`;
    await (await zeroSource(name)).close();
    // Read through a far view of the source (mean 25 ms per OSD reply), one 1 MiB chunk at a time:
    // about a second of copying, stopped at its first progress. (A bandwidth cap would not slow it:
    // it counts bytes sent, and zeros are not sent.)
    const farDir = mkdtempSync(join(tmpdir(), 'rbd-stream-sync-'));
    const far = await Rados.connect({ conf: writeDelayedConf(a, 25, farDir), keyring: a.keyring, user: a.user });
    const src = await (await far.openPool(a.pool)).openImage(name);
    try {
      const ac = new AbortController();
      await expect(syncImage({
        source: src, target: { pool: pb }, signal: ac.signal, concurrency: 1, inflightBytes: MiB,
        onProgress: (p) => { if (p.bytesDone > 0 && p.bytesDone < SIZE) ac.abort(); },
      })).rejects.toMatchObject({ code: 'ABORT_ERR' });
      expect(ac.signal.aborted).toBe(true);
      const left = await targetState(name);
      expect(left.snaps).toEqual([]);
      expect(left.allocated).toEqual([]); // nothing was written
      expect(left.checkpoint.doneOffset).toBeLessThan(SIZE);
      const [snap] = await snapNames(a, name);
      const r = await syncImage({ source: src, target: { pool: pb } });
      expect(r).toMatchObject({ mode: 'full', snapshot: snap, resumed: true, bytesWritten: 0 });
      expect(await snapNames(b, name)).toEqual([snap]);
      expect(await rbdExportMd5(b, `${b.pool}/${name}@${snap}`)).toBe(await rbdExportMd5(a, `${a.pool}/${name}@${snap}`));
    } finally {
      await src.close();
      await far.close();
      rmSync(farDir, { recursive: true, force: true });
    }
  });

  it('SIGKILLed: the same, for a process that could write no checkpoint of its own', async () => {
    const name = `${tag}-zkill`;
    const src = await zeroSource(name);
    await src.close();
    // A sync round (the fixture) reading a far view of the source (mean 50 ms per OSD reply), one
    // 1 MiB chunk at a time: seconds of copying, killed as soon as its target carries a checkpoint.
    const farDir = mkdtempSync(join(tmpdir(), 'rbd-stream-sync-'));
    const farA = { ...a, conf: writeDelayedConf(a, 50, farDir) };
    const { process: child, stderr, exited } = startReplicateChild({ CHILD_SYNC: '1', CHILD_A: JSON.stringify(farA), CHILD_B: JSON.stringify(b), CHILD_SRC: name, CHILD_DST: name });
    try {
      const deadline = Date.now() + 60_000;
      while (!(await rbdCli(b, ['image-meta', 'get', `${b.pool}/${name}`, 'rbd-stream.checkpoint']).catch(() => ''))) {
        expect(child.exitCode, `the round ended before it was killed: ${stderr()}`).toBeNull();
        expect(Date.now()).toBeLessThan(deadline);
        await new Promise((r) => setTimeout(r, 20));
      }
      child.kill('SIGKILL');
      await exited;
    } finally {
      child.kill('SIGKILL');
      rmSync(farDir, { recursive: true, force: true });
    }
    const left = await targetState(name);
    expect(left.snaps).toEqual([]);
    expect(left.allocated).toEqual([]);
    expect(left.checkpoint.doneOffset).toBeLessThan(SIZE);
    const [snap] = await snapNames(a, name);
    const img = await pa.openImage(name);
    try {
      const r = await syncImage({ source: img, target: { pool: pb } });
      expect(r).toMatchObject({ mode: 'full', snapshot: snap, resumed: left.checkpoint.doneOffset > 0, bytesWritten: 0 });
      expect(await rbdExportMd5(b, `${b.pool}/${name}@${snap}`)).toBe(await rbdExportMd5(a, `${a.pool}/${name}@${snap}`));
    } finally {
      await img.close();
    }
  });
});

describe('syncPool', () => {
  it('syncs every matching image, N at a time; a broken one does not stop the others', async () => {
    const names = [1, 2, 3, 4].map((i) => `${tag}-pool-${i}`);
    for (const n of names) {
      made.push([a, n], [b, n]);
      await pa.createImage(n, 4 * MiB);
      const img = await pa.openImage(n);
      await img.write(Buffer.alloc(512 * 1024, n.charCodeAt(n.length - 1)), MiB);
      await img.close();
    }
    // Broken: the target of image 3 already exists and is unrelated.
    await pb.createImage(names[2], 4 * MiB);
    const finished: string[] = [];
    const r = await syncPool({ source: pa, target: pb, images: `${tag}-pool-*`, parallel: 2, onImage: (x) => finished.push(x.name) });
    expect(r.images.map((x) => x.name)).toEqual(names);
    expect(finished.sort()).toEqual(names);
    expect(r.summary).toMatchObject({ total: 4, ok: 3, failed: 1 });
    const bad = r.images[2];
    expect(bad.ok).toBe(false);
    if (!bad.ok) expect(bad.error.code).toBe('ERR_NO_COMMON_SNAPSHOT');
    for (const x of r.images) {
      if (!x.ok) continue;
      expect(x.mode).toBe('full');
      expect(await rbdExportMd5(b, `${b.pool}/${x.name}@${x.snapshot}`)).toBe(await rbdExportMd5(a, `${a.pool}/${x.name}@${x.snapshot}`));
    }
    // A second pass over an explicit list is incremental for the good ones.
    const r2 = await syncPool({ source: pa, target: pb, images: [names[0], names[1]], parallel: 3 });
    expect(r2.summary).toMatchObject({ total: 2, ok: 2, failed: 0 });
    expect(r2.images.every((x) => x.ok && x.mode === 'incremental')).toBe(true);
  });
});

describe('round leases: a running round keeps its snapshots from other rounds\' pruning', () => {
  const LEASE = 'rbd-stream.round.';
  const fill = (len: number, seed: number) => {
    const buf = Buffer.alloc(len);
    for (let i = 0; i < len; i += 4) buf.writeUInt32LE(((Math.imul(i + 1, 2654435761) + seed) | 1) >>> 0, i);
    return buf;
  };
  const leases = async (c: TestCluster, name: string) => {
    const out = await rbdCli(c, ['image-meta', 'list', '--format', 'json', `${c.pool}/${name}`]);
    const list = (out.trim() ? JSON.parse(out) : {}) as Record<string, string>; // no metadata: no output at all
    return Object.fromEntries(Object.entries(list).filter(([k]) => k.startsWith(LEASE)));
  };

  it('a round to a second target (keep 1) leaves a running round\'s base and new snapshot; the running round completes and drops its lease', async () => {
    const name = `${tag}-lease`;
    const [t1, t2] = [`${name}-t1`, `${name}-t2`];
    made.push([a, name], [b, t1], [b, t2]);
    await pa.createImage(name, 16 * MiB);
    const src = await pa.openImage(name);
    const other = await pa.openImage(name); // the second round's own handle, as another process would have
    try {
      await src.write(fill(8 * MiB, 1), 0);
      const f1 = await syncImage({ source: src, target: { pool: pb, name: t1 }, prefix: 'ls-' });
      const f2 = await syncImage({ source: src, target: { pool: pb, name: t2 }, prefix: 'ls-' });
      await src.write(fill(8 * MiB, 2), 4 * MiB);
      // Round X to t1: 8 MiB at 1 MiB/s, so it is still copying while round Y runs, also when CI's
      // eight suites at once slow Y's round down.
      let copying!: () => void;
      const started = new Promise<void>((r) => { copying = r; });
      const x = syncImage({ source: src, target: { pool: pb, name: t1 }, prefix: 'ls-', bandwidth: MiB, onProgress: () => copying() });
      x.catch(() => {});
      await started;
      const held = Object.values(await leases(a, name)).map((v) => JSON.parse(v) as { snapshots: string[]; expires: number });
      expect(held).toHaveLength(1);
      expect(held[0].snapshots[0]).toBe(f1.snapshot);
      expect(held[0].expires).toBeGreaterThan(Date.now());
      const xSnap = held[0].snapshots[1];

      const y = await syncImage({ source: other, target: { pool: pb, name: t2 }, prefix: 'ls-', keep: { source: 1, target: 1 } });
      expect(y.base).toBe(f2.snapshot);
      // Without the lease, keep 1 would prune X's base and the snapshot X is reading, too.
      expect(y.pruned.source).toEqual([f2.snapshot]);
      expect(await snapNames(a, name)).toEqual([f1.snapshot, xSnap, y.snapshot].sort());

      const rx = await x;
      expect(rx).toMatchObject({ mode: 'incremental', base: f1.snapshot, snapshot: xSnap });
      expect(await rbdExportMd5(b, `${b.pool}/${t1}@${xSnap}`)).toBe(await rbdExportMd5(a, `${a.pool}/${name}@${xSnap}`));
      expect(await leases(a, name)).toEqual({});
    } finally {
      await src.close();
      await other.close();
    }
  });

  it('pruning skips snapshots of an unexpired lease, ignores and removes expired ones, leaves records it cannot read', async () => {
    const name = `${tag}-lease2`;
    made.push([a, name], [b, name]);
    await pa.createImage(name, 4 * MiB);
    const src = await pa.openImage(name);
    try {
      const rounds: string[] = [];
      for (let i = 0; i < 3; i++) {
        await src.write(fill(256 * 1024, 10 + i), i * MiB);
        rounds.push((await syncImage({ source: src, target: { pool: pb }, prefix: 'lx-' })).snapshot);
      }
      const [s1, s2, s3] = rounds;
      const spec = `${a.pool}/${name}`;
      const rec = (snaps: string[], expires: number) => JSON.stringify({ snapshots: snaps, expires, host: 'elsewhere', pid: 1 });
      await rbdCli(a, ['image-meta', 'set', spec, `${LEASE}live`, rec([s1], Date.now() + 3600_000)]);
      await rbdCli(a, ['image-meta', 'set', spec, `${LEASE}dead`, rec([s2], Date.now() - 1000)]);
      await rbdCli(a, ['image-meta', 'set', spec, `${LEASE}junk`, 'not json']);
      const r = await syncImage({ source: src, target: { pool: pb }, prefix: 'lx-', keep: { source: 1, target: 1 } });
      expect(r.pruned.source).toEqual([s2, s3]);
      expect(r.pruned.target).toEqual([s1, s2, s3]); // the lease is the source's: a round reads its source
      expect(await snapNames(a, name)).toEqual([s1, r.snapshot].sort());
      expect(Object.keys(await leases(a, name)).sort()).toEqual([`${LEASE}junk`, `${LEASE}live`]);
    } finally {
      await src.close();
    }
  });

  it('a lease that cannot be written on every image is written on none (a group round failing to take it leaves nothing held)', async () => {
    const names = [`${tag}-lease3a`, `${tag}-lease3b`];
    for (const n of names) {
      made.push([a, n]);
      await pa.createImage(n, MiB);
    }
    const ok = await pa.openImage(names[0]);
    const closed = await pa.openImage(names[1]);
    await closed.close();
    try {
      await expect(takeLease([ok, closed], ['s1'])).rejects.toMatchObject({ code: 'ERR_CLOSED' });
      expect(await leases(a, names[0])).toEqual({});
    } finally {
      await ok.close();
    }
  });
});
