// Over 450 lines: the consistency harness check, the crash-consistency rounds, the round semantics and the CLI share one pair of clusters and fixtures.
// syncGroup (issue 13): crash-consistent replication of a consistency group, real clusters a → b,
// the rbd CLI as oracle (`rbd export … | md5sum`, `rbd group snap ls`), and a writer child making
// dependent writes across two members while rounds run (test/support/consistency.ts).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { capabilities, syncGroup, syncImage, type Group, type Pool, type Rados, type SyncGroupResult } from '../../lib/index.js';
import { cephCli, clusterArgs, rbdCli, rbdCliSync, rbdExportMd5, type TestCluster } from '../support/clusters.js';
import { A, B as maybeB, Images, KiB, MiB, connectTo, expectCode, md5, rnd } from '../support/helpers.js';
import { kSyncGroupTestHooks, type SyncGroupOptions, type SyncGroupTestHooks } from '../../lib/transfer/sync-group.js';
import { destArgs, runRbdStream as cli } from '../support/cli-process.js';
import { syncFailover } from '../../lib/transfer/sync-failover.js';
import { RING_BYTES, checkWritePair, readRing, startWriter, type Writer } from '../support/consistency.js';

const B = maybeB ?? A;
const imagesA = new Images(A);
const imagesB = new Images(B);
const groupsA: string[] = [];
const groupsB: string[] = [];
const METHOD = capabilities().diffIterate3 ? 'by-id' : 'anchor';
let ra: Rados;
let rb: Rados;
let pa: Pool;
let pb: Pool;

beforeAll(async () => {
  ra = await connectTo(A);
  rb = await connectTo(B);
  pa = await ra.openPool(A.pool);
  pb = await rb.openPool(B.pool);
});

afterAll(async () => {
  await ra?.close();
  await rb?.close();
  for (const g of groupsA) await rbdCli(A, ['group', 'rm', `${A.pool}/${g}`]).catch(() => {});
  for (const g of groupsB) await rbdCli(B, ['group', 'rm', `${B.pool}/${g}`]).catch(() => {});
  await imagesA.purge();
  await imagesB.purge();
});

let gseq = 0;
const groupName = (p: string) => {
  const g = `${p}-${process.pid}-${Date.now().toString(36)}-${gseq++}`;
  groupsA.push(g);
  groupsB.push(g);
  return g;
};

/** A source group on A with new images of these sizes (their target copies on B are purged too). */
async function makeGroup(p: string, sizes: number[]): Promise<{ group: Group; names: string[] }> {
  const g = groupName(p);
  const group = await pa.createGroup(g);
  const names: string[] = [];
  for (const size of sizes) {
    const n = await imagesA.create(pa, `${p}m`, size);
    imagesB.names.push(n);
    await group.addImage(n);
    names.push(n);
  }
  return { group, names };
}

/** md5 of an image's whole content read at a snapshot id (any namespace) through the library. */
async function md5At(pool: Pool, name: string, snapId: number): Promise<string> {
  const img = await pool.openImage(name, { snapshot: { id: snapId }, readOnly: true });
  try {
    return md5(await img.read(0, (await img.stat()).size));
  } finally {
    await img.close();
  }
}

/** The id of `image`'s share of group snapshot `gsnap` of group `group`. */
async function groupSnapId(pool: Pool, image: string, group: string, gsnap: string): Promise<number> {
  const img = await pool.openImage(image);
  try {
    const s = (await img.listSnapshots({ allNamespaces: true })).filter((x) => x.group?.name === group && x.group.snapshot === gsnap);
    expect(s, `${image}: share of ${group}@${gsnap}`).toHaveLength(1);
    return s[0].id;
  } finally {
    await img.close();
  }
}

const groupSnaps = async (c: TestCluster, spec: string) =>
  (JSON.parse(await rbdCli(c, ['group', 'snap', 'ls', '--format', 'json', spec])) as { snapshot: string; state: string }[]).map((s) => s.snapshot);
const groupImages = async (c: TestCluster, spec: string) =>
  (JSON.parse(await rbdCli(c, ['group', 'image', 'list', '--format', 'json', spec])) as { image: string }[]).map((s) => s.image).sort();
const userSnaps = async (c: TestCluster, spec: string) =>
  (JSON.parse(await rbdCli(c, ['snap', 'ls', '--format', 'json', spec])) as { name: string }[]).map((s) => s.name);

/** syncImage of one source image on its own (prefix 'indep-'); the target snapshot's id. */
async function syncAlone(name: string, target: string): Promise<number> {
  const img = await pa.openImage(name);
  try {
    const r = await syncImage({ source: img, target: { pool: pb, name: target }, prefix: 'indep-', keep: { source: 1, target: 1 } });
    const t = await pb.openImage(target);
    try {
      return (await t.getSnapshot(r.snapshot))!.id;
    } finally {
      await t.close();
    }
  } finally {
    await img.close();
  }
}

/** Every member's target copy of the round equals the source head (no writer running). */
async function expectHeadsCopied(r: SyncGroupResult, names: string[]): Promise<void> {
  for (const n of names) {
    expect(await rbdExportMd5(B, `${B.pool}/${n}@${r.snapshot}`), n).toBe(await rbdExportMd5(A, `${A.pool}/${n}`));
  }
}

/** Snapshot ids of an image by name, from `rbd snap ls --all`: user ones by name, group ones as '@<group snap>'. */
async function cliSnapIds(c: typeof A, spec: string): Promise<Map<string, number>> {
  const out = JSON.parse(await rbdCli(c, ['snap', 'ls', '--all', '--format', 'json', spec])) as
    { id: number; name: string; namespace: { type: string; 'group snap'?: string } }[];
  return new Map(out.map((s) => [s.namespace.type === 'group' ? `@${s.namespace['group snap']}` : s.name, s.id]));
}

describe('the crash-consistency check itself', () => {
  it('passes on every group snapshot taken under load, and fails on independent per-image snapshots', async () => {
    const i1 = await imagesA.create(pa, 'cc1', 4 * MiB);
    const i2 = await imagesA.create(pa, 'cc2', 4 * MiB);
    expect(RING_BYTES).toBeLessThanOrEqual(4 * MiB);
    const g = groupName('ccg');
    await rbdCli(A, ['group', 'create', `${A.pool}/${g}`]);
    for (const i of [i1, i2]) await rbdCli(A, ['group', 'image', 'add', `${A.pool}/${g}`, `${A.pool}/${i}`]);
    const ROUNDS = 5;
    let w: Writer | undefined;
    try {
      w = await startWriter(A, A.pool, i1, i2);
      for (let n = 0; n < ROUNDS; n++) {
        // A group snapshot: one point for both members.
        await rbdCli(A, ['group', 'snap', 'create', `${A.pool}/${g}@p${n}`]);
        // Independent snapshots, image 1 then image 2 a little later (as per-image sync takes them).
        await rbdCli(A, ['snap', 'create', `${A.pool}/${i1}@q${n}`]);
        await new Promise((r) => setTimeout(r, 100));
        await rbdCli(A, ['snap', 'create', `${A.pool}/${i2}@q${n}`]);
      }
      const seq = await w.stop();
      w = undefined;
      const ids1 = await cliSnapIds(A, `${A.pool}/${i1}`);
      const ids2 = await cliSnapIds(A, `${A.pool}/${i2}`);
      let independentFailures = 0;
      let maxSeq = 0;
      for (let n = 0; n < ROUNDS; n++) {
        const group = checkWritePair(await readRing(pa, i1, ids1.get(`@p${n}`)!), await readRing(pa, i2, ids2.get(`@p${n}`)!));
        expect(group.ok, JSON.stringify(group)).toBe(true);
        expect(group.records).toBeGreaterThan(0);
        maxSeq = Math.max(maxSeq, group.maxSeq);
        const independent = checkWritePair(await readRing(pa, i1, ids1.get(`q${n}`)!), await readRing(pa, i2, ids2.get(`q${n}`)!));
        if (!independent.ok) independentFailures++;
      }
      // The writer kept writing through the group snapshots (later points saw later records).
      expect(seq).toBeGreaterThanOrEqual(maxSeq);
      expect(maxSeq).toBeGreaterThan(ROUNDS);
      console.log(`writer committed ${seq} pairs; independent snapshot pairs failing the check: ${independentFailures}/${ROUNDS}`);
      // The negative control: the check can fail, and does on independent snapshots.
      expect(independentFailures).toBeGreaterThan(0);
    } finally {
      w?.kill();
    }
  });
});

describe('syncGroup', () => {
  it('10 rounds under a live dependent writer: every target group snapshot is crash-consistent and equals the source point; per-image sync is not', async () => {
    const { group, names: [i1, i2] } = await makeGroup('sgc', [4 * MiB, 4 * MiB]);
    const g = group.name;
    // Independent per-image syncs of the same two images, as syncImage would run them (the control).
    const indep = [`${i1}-indep`, `${i2}-indep`];
    imagesB.names.push(...indep);
    let w: Writer | undefined;
    let independentFailures = 0;
    try {
      w = await startWriter(A, A.pool, i1, i2);
      for (let n = 0; n < 10; n++) {
        const r = await syncGroup({ source: group, target: { pool: pb }, keep: { source: 2, target: 3 }, verify: n % 3 === 0 });
        expect(r.method).toBe(METHOD);
        expect(r.members.map((m) => m.mode)).toEqual(n === 0 ? ['full', 'full'] : ['incremental', 'incremental']);
        expect(await groupSnaps(B, `${B.pool}/${g}`)).toContain(r.snapshot);
        // The target group snapshot, read member by member at its ids: consistent.
        const ring1 = await readRing(pb, i1, await groupSnapId(pb, i1, g, r.snapshot));
        const ring2 = await readRing(pb, i2, await groupSnapId(pb, i2, g, r.snapshot));
        const c = checkWritePair(ring1, ring2);
        expect(c.ok, `round ${n}: ${JSON.stringify(c)}`).toBe(true);
        expect(c.records).toBeGreaterThan(0);
        // The members' copies (user snapshots, rbd export) equal the source members at G_n.
        for (const name of [i1, i2]) {
          expect(await rbdExportMd5(B, `${B.pool}/${name}@${r.snapshot}`)).toBe(await md5At(pa, name, await groupSnapId(pa, name, g, r.snapshot)));
        }
        // The control: each image synced on its own, one after the other.
        const [id1, id2] = [await syncAlone(i1, indep[0]), await syncAlone(i2, indep[1])];
        if (!checkWritePair(await readRing(pb, indep[0], id1), await readRing(pb, indep[1], id2)).ok) independentFailures++;
      }
      const seq = await w.stop();
      w = undefined;
      console.log(`writer committed ${seq} pairs over 10 rounds; per-image sync pairs failing the check: ${independentFailures}/10`);
      expect(independentFailures).toBeGreaterThan(0);
      // Pruned to keep: 2 on the source, 3 on the target (with the members' user snapshots).
      expect(await groupSnaps(A, `${A.pool}/${g}`)).toHaveLength(2);
      expect(await groupSnaps(B, `${B.pool}/${g}`)).toHaveLength(3);
      for (const name of [i1, i2]) {
        expect((await userSnaps(B, `${B.pool}/${name}`)).sort()).toEqual((await groupSnaps(B, `${B.pool}/${g}`)).sort());
        // Anchors only with the anchor method, one per kept source group snapshot.
        const anchors = (await userSnaps(A, `${A.pool}/${name}`)).filter((x) => x.endsWith('-anchor'));
        expect(anchors.length).toBe(METHOD === 'anchor' ? 2 : 0);
      }
    } finally {
      w?.kill();
    }
  }, 600_000);

  it('incremental rounds copy only the changed bytes; an added member gets a full copy, a removed one is reported and leaves the target group (image kept)', async () => {
    const { group, names: [i1, i2] } = await makeGroup('sgi', [8 * MiB, 8 * MiB]);
    const g = group.name;
    const [h1, h2] = [await pa.openImage(i1), await pa.openImage(i2)];
    try {
      // Every object of i1 allocated: a diff over an object created after its from-snapshot spans
      // the object from its start (a superset), which would blur the byte count below.
      await h1.write(rnd(8 * MiB), 0);
      await h2.write(rnd(1 * MiB), 3 * MiB);
      await h1.flush();
      await h2.flush();
      // Two members at once share 4 MiB of buffers: 2 MiB each (unshared, i1's copy would fill to 4).
      const r1 = await syncGroup({ source: group, target: { pool: pb }, verify: true, inflightBytes: 4 * MiB });
      expect(r1.base).toBeUndefined();
      expect(r1.members.find((m) => m.image.endsWith(`/${i1}`))!.peakInflightBytes).toBe(2 * MiB);
      for (const m of r1.members) expect(m.peakInflightBytes).toBeLessThanOrEqual(2 * MiB);
      expect(r1.added.sort()).toEqual([i1, i2].sort());
      expect(r1.verified).toBe(true);
      await expectHeadsCopied(r1, [i1, i2]);
      expect(await groupImages(B, `${B.pool}/${g}`)).toEqual([i1, i2].sort());

      // 64 KiB changed in i1, nothing in i2: exactly that is written (nothing was written between
      // the anchor and the group snapshot, so the anchor costs no extra bytes here).
      await h1.write(rnd(64 * KiB), 5 * MiB);
      await h1.flush();
      const r2 = await syncGroup({ source: group, target: { pool: pb } });
      expect(r2.method).toBe(METHOD);
      expect(r2.base).toBe(r1.snapshot);
      const [m1, m2] = [r2.members.find((m) => m.image.endsWith(`/${i1}`))!, r2.members.find((m) => m.image.endsWith(`/${i2}`))!];
      expect(m1.mode).toBe('incremental');
      expect(m1.base).toBe(r1.snapshot);
      expect(m1.bytesWritten + m1.bytesZeroed).toBe(64 * KiB);
      expect(m2.bytesWritten + m2.bytesZeroed).toBe(0);
      expect(r2.added).toEqual([]);
      await expectHeadsCopied(r2, [i1, i2]);

      // Membership changes: i3 added, i2 removed.
      const i3 = await imagesA.create(pa, 'sgim', 4 * MiB);
      imagesB.names.push(i3);
      const h3 = await pa.openImage(i3);
      await h3.write(rnd(1 * MiB), 1 * MiB);
      await h3.flush();
      await h3.close();
      await group.addImage(i3);
      await group.removeImage(i2);
      const r3 = await syncGroup({ source: group, target: { pool: pb } });
      expect(r3.added).toEqual([i3]);
      expect(r3.removed).toEqual([i2]);
      const m3 = r3.members.find((m) => m.image.endsWith(`/${i3}`))!;
      expect(m3.mode).toBe('full');
      expect(r3.members.find((m) => m.image.endsWith(`/${i1}`))!.mode).toBe('incremental');
      expect(r3.members).toHaveLength(2);
      await expectHeadsCopied(r3, [i1, i3]);
      expect(await groupImages(B, `${B.pool}/${g}`)).toEqual([i1, i3].sort());
      // The removed member's target image stays, with the copies it had.
      expect(await userSnaps(B, `${B.pool}/${i2}`)).toContain(r2.snapshot);
      expect(await groupSnaps(B, `${B.pool}/${g}`)).toContain(r3.snapshot);
    } finally {
      await h1.close();
      await h2.close();
    }
  });

  it('refusals: a target member whose copy of the common point is not that point (ERR_WRONG_BASE), an unrelated target image (ERR_NO_COMMON_SNAPSHOT); force overrides', async () => {
    const { group, names: [i1, i2] } = await makeGroup('sgr', [4 * MiB, 4 * MiB]);
    const r1 = await syncGroup({ source: group, target: { pool: pb } });
    // The copy's recorded identity is gone: it can no longer be proven to be the group snapshot.
    await rbdCli(B, ['image-meta', 'remove', `${B.pool}/${i2}`, `rbd-stream.snap.${r1.snapshot}`]);
    const before = await groupSnaps(A, `${A.pool}/${group.name}`);
    const e = await expectCode(syncGroup({ source: group, target: { pool: pb } }), 'ERR_WRONG_BASE');
    expect(e.image).toBe(i2);
    expect(e.snapshot).toBe(r1.snapshot);
    // Refused before a new group snapshot was taken.
    expect(await groupSnaps(A, `${A.pool}/${group.name}`)).toEqual(before);
    const r2 = await syncGroup({ source: group, target: { pool: pb }, force: true });
    expect(r2.members.find((m) => m.image.endsWith(`/${i2}`))!.mode).toBe('full');
    expect(r2.members.find((m) => m.image.endsWith(`/${i1}`))!.mode).toBe('incremental');
    await expectHeadsCopied(r2, [i1, i2]);

    // A new group whose member's name is taken on the target by an image with no common point.
    const other = await makeGroup('sgr2', [4 * MiB]);
    await pb.createImage(other.names[0], 4 * MiB);
    await expectCode(syncGroup({ source: other.group, target: { pool: pb } }), 'ERR_NO_COMMON_SNAPSHOT');
    expect(await groupSnaps(A, `${A.pool}/${other.group.name}`)).toEqual([]);
    const r3 = await syncGroup({ source: other.group, target: { pool: pb }, force: true });
    await expectHeadsCopied(r3, other.names);
  });

  it('the anchor method on any release (test hook): what changed between anchor and group snapshot is copied again next round, never missed', async () => {
    const { group, names: [i1, i2] } = await makeGroup('sgm', [8 * MiB, 4 * MiB]);
    const h1 = await pa.openImage(i1);
    const withHooks = (o: SyncGroupOptions, hooks: SyncGroupTestHooks): SyncGroupOptions => ({ ...o, [kSyncGroupTestHooks]: hooks } as SyncGroupOptions);
    try {
      // Every object allocated from the start: diffs are then exact to the byte (an object created
      // after the from-snapshot is reported from its start).
      await h1.write(rnd(8 * MiB), 0);
      // Written after the anchors, before the group snapshot: in G1, and changed since A1.
      const r1 = await syncGroup(withHooks({ source: group, target: { pool: pb } }, {
        method: 'anchor',
        afterAnchors: async () => { await h1.write(rnd(64 * KiB), 4 * MiB); await h1.flush(); },
      }));
      expect(r1.method).toBe('anchor');
      await expectHeadsCopied(r1, [i1, i2]);
      expect((await userSnaps(A, `${A.pool}/${i1}`))).toContain(`${r1.snapshot}-anchor`);
      await h1.write(rnd(32 * KiB), 6 * MiB);
      await h1.flush();
      const r2 = await syncGroup(withHooks({ source: group, target: { pool: pb }, verify: true }, { method: 'anchor' }));
      const m1 = r2.members.find((m) => m.image.endsWith(`/${i1}`))!;
      // diff(A1 → G2): the 32 KiB changed since G1, plus the 64 KiB written between A1 and G1 again.
      expect(m1.bytesWritten + m1.bytesZeroed).toBe(96 * KiB);
      expect(r2.members.find((m) => m.image.endsWith(`/${i2}`))!.bytesWritten).toBe(0);
      await expectHeadsCopied(r2, [i1, i2]);
      await h1.write(rnd(16 * KiB), 7 * MiB);
      await h1.flush();
      if (capabilities().diffIterate3) {
        // By id from G2: exactly what changed since.
        const r3 = await syncGroup(withHooks({ source: group, target: { pool: pb } }, { method: 'by-id' }));
        expect(r3.method).toBe('by-id');
        const m = r3.members.find((x) => x.image.endsWith(`/${i1}`))!;
        expect(m.bytesWritten + m.bytesZeroed).toBe(16 * KiB);
        await expectHeadsCopied(r3, [i1, i2]);
      } else {
        // No rbd_diff_iterate3: by id cannot diff a group snapshot.
        await expectCode(syncGroup(withHooks({ source: group, target: { pool: pb } }, { method: 'by-id' })), 'ENOTSUP');
      }
    } finally {
      await h1.close();
    }
  });

  it('members from two pools with the same name would collide on the target: ERR_MEMBER_COLLISION before any snapshot', async () => {
    const pool2 = `rbdstream-sg2-${process.pid}`;
    await cephCli(A, ['osd', 'pool', 'create', pool2, '8']);
    await rbdCli(A, ['pool', 'init', pool2]);
    const p2 = await ra.openPool(pool2);
    try {
      const { group, names: [i1] } = await makeGroup('sgx', [4 * MiB]);
      await p2.createImage(i1, 4 * MiB);
      await group.addImage({ pool: p2, name: i1 });
      const e = await expectCode(syncGroup({ source: group, target: { pool: pb } }), 'ERR_MEMBER_COLLISION');
      expect(e.image).toBe(i1);
      expect(await groupSnaps(A, `${A.pool}/${group.name}`)).toEqual([]);
      await group.removeImage({ pool: p2, name: i1 });
    } finally {
      await p2.close();
      await cephCli(A, ['osd', 'pool', 'rm', pool2, pool2, '--yes-i-really-really-mean-it']).catch(() => {});
    }
  });

  it('an aborted round (signal) resumes: same group snapshot, copied members skipped, the partial one from its checkpoint', async () => {
    const { group, names: [i1, i2] } = await makeGroup('sga', [16 * MiB, 4 * MiB]);
    const g = group.name;
    for (const [n, size] of [[i1, 16 * MiB], [i2, 4 * MiB]] as const) {
      const h = await pa.openImage(n);
      await h.write(rnd(size), 0);
      await h.close();
    }
    const ac = new AbortController();
    // Both members at once, slowly: aborted once i2 is copied and part of i1 is on the target.
    let i2Done = false;
    const e = await expectCode(syncGroup({
      source: group, target: { pool: pb }, parallel: 2, concurrency: 1, bandwidth: 4 * MiB, signal: ac.signal,
      onProgress: (p) => {
        if (p.image.endsWith(`/${i2}`) && p.bytesDone === p.bytesTotal) i2Done = true;
        if (p.image.endsWith(`/${i1}`) && p.bytesDone >= 2 * MiB && i2Done) ac.abort();
      },
    }), 'ABORT_ERR');
    expect(e).toBeDefined();
    const [snap] = await groupSnaps(A, `${A.pool}/${g}`);
    expect(snap).toBeDefined();
    expect(await groupSnaps(B, `${B.pool}/${g}`).catch(() => [])).toEqual([]);
    const r = await syncGroup({ source: group, target: { pool: pb } });
    expect(r.resumed).toBe(true);
    expect(r.members.find((m) => m.image.endsWith(`/${i2}`))!.skipped).toBe(true);
    expect(r.snapshot).toBe(snap);
    const m1 = r.members.find((m) => m.image.endsWith(`/${i1}`))!;
    expect(m1.resumed).toBe(true);
    expect(m1.bytesRead).toBeLessThan(16 * MiB);
    await expectHeadsCopied(r, [i1, i2]);
    expect(await groupSnaps(B, `${B.pool}/${g}`)).toEqual([snap]);
  });

  it('round leases: a round holds its base and new point on every member while it runs; pruning skips points of unexpired leases and removes expired ones', async () => {
    const { group, names: [i1, i2] } = await makeGroup('sgl', [4 * MiB, 4 * MiB]);
    const LEASE = 'rbd-stream.round.';
    // Synchronous: read inside the round's progress callback, the round cannot go on and drop its
    // lease before the CLI has answered (read asynchronously, a loaded CI machine saw it gone).
    const leases = (name: string) => {
      const out = rbdCliSync(A, ['image-meta', 'list', '--format', 'json', `${A.pool}/${name}`]);
      const all = (out.trim() ? JSON.parse(out) : {}) as Record<string, string>; // none: no output at all
      return Object.fromEntries(Object.entries(all).filter(([k]) => k.startsWith(LEASE)));
    };
    const write = async (name: string) => {
      const h = await pa.openImage(name);
      await h.write(rnd(MiB), MiB);
      await h.close();
    };
    const rounds: string[] = [];
    for (let i = 0; i < 3; i++) {
      await write(i1);
      rounds.push((await syncGroup({ source: group, target: { pool: pb } })).snapshot);
    }
    const [g1, g2, g3] = rounds;
    const rec = (snaps: string[], expires: number) => JSON.stringify({ snapshots: snaps, expires, host: 'elsewhere', pid: 1 });
    await rbdCli(A, ['image-meta', 'set', `${A.pool}/${i2}`, `${LEASE}live`, rec([g1], Date.now() + 3600_000)]);
    await rbdCli(A, ['image-meta', 'set', `${A.pool}/${i1}`, `${LEASE}dead`, rec([g2], Date.now() - 1000)]);
    await write(i1);
    await write(i2);
    let during: Record<string, string>[] | undefined;
    const r = await syncGroup({
      source: group, target: { pool: pb }, keep: { source: 1, target: 1 },
      onProgress: () => { during ??= [leases(i1), leases(i2)]; },
    });
    expect(during).toBeDefined();
    const own = (m: Record<string, string>) => Object.entries(m).filter(([k]) => !k.endsWith('.live') && !k.endsWith('.dead'));
    const [o1, o2] = during!.map(own);
    expect(o1).toHaveLength(1);
    expect(o2).toEqual(o1); // the same lease on every member
    const held = (JSON.parse(o1[0][1]) as { snapshots: string[] }).snapshots;
    expect(held).toEqual(expect.arrayContaining([g3, r.snapshot]));
    expect(r.base).toBe(g3);
    // g1 is held by the live lease; g2's lease expired.
    expect(r.pruned.source).toEqual([g2, g3]);
    expect(r.pruned.target).toEqual([g1, g2, g3]);
    expect((await groupSnaps(A, `${A.pool}/${group.name}`)).sort()).toEqual([g1, r.snapshot]);
    expect(Object.keys(leases(i1))).toEqual([]);
    expect(Object.keys(leases(i2))).toEqual([`${LEASE}live`]);
    await expectHeadsCopied(r, [i1, i2]);
  });

  it('verify: every member is checksummed on both sides', async () => {
    const { group, names } = await makeGroup('sgv', [4 * MiB, 4 * MiB]);
    const h = await pa.openImage(names[1]);
    await h.write(rnd(512 * KiB), 0);
    await h.close();
    const r = await syncGroup({ source: group, target: { pool: pb, group: `${group.name}-t` }, verify: true });
    groupsB.push(`${group.name}-t`);
    expect(r.verified).toBe(true);
    expect(r.target).toBe(`${B.pool}/${group.name}-t`);
    expect(await groupSnaps(B, `${B.pool}/${group.name}-t`)).toEqual([r.snapshot]);
    await expectHeadsCopied(r, names);
  });

  it('bad options are TypeError/RangeError before any cluster call', async () => {
    const { group } = await makeGroup('sgo', [4 * MiB]);
    await expect(syncGroup({ source: pa as unknown as Group, target: { pool: pb } })).rejects.toThrow(TypeError);
    await expect(syncGroup({ source: group, target: { pool: 'x' as unknown as Pool } })).rejects.toThrow(TypeError);
    await expect(syncGroup({ source: group, target: { pool: pb, group: 'a/b' } })).rejects.toThrow(TypeError);
    await expect(syncGroup({ source: group, target: { pool: pb }, parallel: 0 })).rejects.toThrow(RangeError);
    await expect(syncGroup({ source: group, target: { pool: pb }, inflightBytes: 1000 })).rejects.toThrow(RangeError);
    await expect(syncGroup({ source: group, target: { pool: pb }, keep: { source: 'weekly' } })).rejects.toThrow(RangeError);
    await expect(syncGroup({ source: group, target: { pool: pb }, bogus: 1 } as never)).rejects.toThrow(TypeError);
    expect(await groupSnaps(A, `${A.pool}/${group.name}`)).toEqual([]);
  });
});

describe('group failover (A lost)', () => {
  const meta = async (name: string, key: string) => {
    const img = await pb.openImage(name);
    try {
      return await img.getMetadata(key);
    } finally {
      await img.close();
    }
  };

  /** A group synced once (G1), then a round (G2) that died once i2 was copied and part of i1 was on B. */
  async function interruptedRound(p: string) {
    const { group, names: [i1, i2] } = await makeGroup(p, [16 * MiB, 4 * MiB]);
    const g = group.name;
    for (const [n, size] of [[i1, 16 * MiB], [i2, 4 * MiB]] as const) {
      const h = await pa.openImage(n);
      await h.write(rnd(size), 0);
      await h.close();
    }
    const r1 = await syncGroup({ source: group, target: { pool: pb } });
    for (const [n, len] of [[i1, 4 * MiB], [i2, MiB]] as const) {
      const h = await pa.openImage(n);
      await h.write(rnd(len), 0);
      await h.close();
    }
    const ac = new AbortController();
    let i2Done = false;
    await expectCode(syncGroup({
      source: group, target: { pool: pb }, parallel: 2, concurrency: 1, bandwidth: 4 * MiB, signal: ac.signal,
      onProgress: (x) => {
        if (x.image.endsWith(`/${i2}`) && x.bytesDone === x.bytesTotal) i2Done = true;
        if (x.image.endsWith(`/${i1}`) && x.bytesDone >= MiB && i2Done) ac.abort();
      },
    }), 'ABORT_ERR');
    const g2 = (await groupSnaps(A, `${A.pool}/${g}`)).find((x) => x !== r1.snapshot)!;
    expect(await groupSnaps(B, `${B.pool}/${g}`)).toEqual([r1.snapshot]);
    return { g, i1, i2, g1: r1.snapshot, g2 };
  }

  it('a round that died after copying one member: failover --group puts every member at the newest group snapshot, not the one a round ahead at its own newest copy', async () => {
    const { g, i1, i2, g1, g2 } = await interruptedRound('sgf');
    const r1 = { snapshot: g1 };
    // Without the group rule: i2's newest completed copy is G2 (a per-image failover stands there,
    // a round ahead of i1), and i1 holds a checkpoint.
    expect(await meta(i2, `rbd-stream.snap.${g2}`)).toBeDefined();
    expect(await rbdExportMd5(B, `${B.pool}/${i2}`)).toBe(await rbdExportMd5(B, `${B.pool}/${i2}@${g2}`));
    expect(await rbdExportMd5(B, `${B.pool}/${i2}`)).not.toBe(await rbdExportMd5(B, `${B.pool}/${i2}@${r1.snapshot}`));
    expect(await meta(i1, 'rbd-stream.checkpoint')).toBeDefined();

    const fo = await cli(['--json', 'failover', ...clusterArgs(B), '--group', `${B.pool}/${g}`]);
    expect(fo.code, fo.stderr).toBe(0);
    const j = JSON.parse(fo.stdout);
    expect(j.group).toEqual({ name: g, snapshot: r1.snapshot });
    expect(j.images).toEqual([
      { ok: true, name: i1, snapshot: r1.snapshot, rolledBack: true, checkpointRemoved: true },
      { ok: true, name: i2, snapshot: r1.snapshot, rolledBack: true, checkpointRemoved: false },
    ]);
    for (const n of [i1, i2]) {
      expect(await rbdExportMd5(B, `${B.pool}/${n}`), n).toBe(await rbdExportMd5(B, `${B.pool}/${n}@${r1.snapshot}`));
    }
    expect(await meta(i1, 'rbd-stream.checkpoint')).toBeUndefined();
    const again = await cli(['--json', 'failover', ...clusterArgs(B), '--group', `${B.pool}/${g}`]);
    expect(again.code, again.stderr).toBe(0);
    expect(JSON.parse(again.stdout).images.map((x: { failedOverAt?: string }) => typeof x.failedOverAt)).toEqual(['string', 'string']);
  }, 180_000);

  it('a failover that died between a member\'s rollback and its mark: the re-run finishes it (the pending mark explains the change)', async () => {
    const { g, i1, i2, g1 } = await interruptedRound('sgfp');
    // What the dying failover did to i2: its rollback, which a diff shows as a change.
    await rbdCli(B, ['snap', 'rollback', '--no-progress', `${B.pool}/${i2}@${g1}`]);
    // Without a pending mark that change is a write nobody explains: refused, nothing changed.
    await expectCode(syncFailover({ pool: pb, group: g }), 'ERR_TARGET_CHANGED');
    expect(await meta(i1, 'rbd-stream.checkpoint')).toBeDefined();
    // The mark apply() writes before each rollback.
    await rbdCli(B, ['image-meta', 'set', `${B.pool}/${i2}`, 'rbd-stream.failover', JSON.stringify({ snapshot: g1, pending: true })]);
    const r = await syncFailover({ pool: pb, group: g });
    expect(r.images.map((x) => x.ok && [x.name, x.checkpointRemoved])).toEqual([[i1, true], [i2, false]]);
    for (const n of [i1, i2]) expect(await rbdExportMd5(B, `${B.pool}/${n}`), n).toBe(await rbdExportMd5(B, `${B.pool}/${n}@${g1}`));
    expect(JSON.parse((await meta(i2, 'rbd-stream.failover'))!)).toMatchObject({ snapshot: g1, at: expect.any(String) });
  }, 180_000);

  it('all members or none: a live client on one member (EBUSY), a member written since (ERR_TARGET_CHANGED) refuse the group and change nothing; force', async () => {
    const { group, names: [i1, i2] } = await makeGroup('sgfr', [4 * MiB, 4 * MiB]);
    const g = group.name;
    const r1 = await syncGroup({ source: group, target: { pool: pb } });
    const h = await pb.openImage(i2);
    await h.write(rnd(64 * KiB), MiB); // takes i2's lock, and changes it
    await expectCode(syncFailover({ pool: pb, group: g }), 'EBUSY');
    await h.close();
    const e = await expectCode(syncFailover({ pool: pb, group: g }), 'ERR_TARGET_CHANGED');
    expect(e.message).toMatch(new RegExp(`no member was changed.*${i2}`));
    expect(e.members).toEqual([{ name: i2, code: 'ERR_TARGET_CHANGED', message: expect.any(String) }]);
    for (const n of [i1, i2]) expect(await meta(n, 'rbd-stream.failover'), n).toBeUndefined();
    const written = await rbdExportMd5(B, `${B.pool}/${i2}`);
    expect(written).not.toBe(await rbdExportMd5(B, `${B.pool}/${i2}@${r1.snapshot}`));

    const r = await syncFailover({ pool: pb, group: g, force: true });
    expect(r.group).toEqual({ name: g, snapshot: r1.snapshot });
    expect(r.images.map((x) => x.ok && [x.name, x.rolledBack])).toEqual([[i1, false], [i2, true]]);
    expect(await rbdExportMd5(B, `${B.pool}/${i2}`)).toBe(await rbdExportMd5(B, `${B.pool}/${i2}@${r1.snapshot}`));

    await expect(syncFailover({ pool: pb, group: g, images: [i1] })).rejects.toThrow(TypeError);
    const empty = groupName('sgfe');
    await pb.createGroup(empty);
    await expectCode(syncFailover({ pool: pb, group: empty }), 'ERR_NO_COMMON_SNAPSHOT');
    await expectCode(syncFailover({ pool: pb, group: `${empty}-none` }), 'ENOENT');
  });
});

describe('CLI sync-group', () => {
  it('two rounds end to end (exit 0, --json result), then a refusal exits 4 with its code', async () => {
    const { group, names } = await makeGroup('sgcli', [4 * MiB, 4 * MiB]);
    const h = await pa.openImage(names[0]);
    await h.write(rnd(256 * KiB), 64 * KiB);
    await h.close();
    const args = ['--json', 'sync-group', ...clusterArgs(A), ...destArgs(B), '--keep-target', '1', `${A.pool}/${group.name}`, `${B.pool}/${group.name}`];
    const first = await cli(args);
    expect(first.code, first.stderr).toBe(0);
    const r1 = JSON.parse(first.stdout) as SyncGroupResult;
    expect(r1.method).toBe(METHOD);
    expect(r1.members.map((m) => m.mode)).toEqual(['full', 'full']);
    await expectHeadsCopied(r1, names);
    const second = await cli(args);
    expect(second.code, second.stderr).toBe(0);
    const r2 = JSON.parse(second.stdout) as SyncGroupResult;
    expect(r2.base).toBe(r1.snapshot);
    expect(r2.pruned.target).toEqual([r1.snapshot]);
    expect(await groupSnaps(B, `${B.pool}/${group.name}`)).toEqual([r2.snapshot]);
    await expectHeadsCopied(r2, names);
    // Into another target group: its members' target images belong to the first (one group each).
    const before = await groupSnaps(A, `${A.pool}/${group.name}`);
    const refused = await cli(['--json', 'sync-group', ...clusterArgs(A), ...destArgs(B), `${A.pool}/${group.name}`, `${B.pool}/${group.name}-other`]);
    groupsB.push(`${group.name}-other`);
    expect(refused.code).toBe(4);
    expect(JSON.parse(refused.stderr.trim() || refused.stdout).error.code).toBe('EEXIST');
    expect(await groupSnaps(A, `${A.pool}/${group.name}`)).toEqual(before);
    const usage = await cli(['sync-group', ...clusterArgs(A), `${A.pool}`, `${B.pool}`]);
    expect(usage.code).toBe(2);
  }, 180_000);
});
