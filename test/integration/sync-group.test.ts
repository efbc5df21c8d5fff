// syncGroup (issue 13): crash-consistent replication of a consistency group, real clusters a → b,
// the rbd CLI as oracle (`rbd export … | md5sum`, `rbd group snap ls`), and a writer child making
// dependent writes across two members while rounds run (test/support/consistency.ts).
import { spawn } from 'node:child_process';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { capabilities, syncGroup, syncImage, type Group, type Pool, type Rados, type SyncGroupResult } from '../../lib/index.js';
import { cephCli, clusterArgs, rbdCli, rbdExportMd5, type TestCluster } from '../support/clusters.js';
import { A, B as maybeB, Images, KiB, MiB, connectTo, expectCode, md5, rnd } from '../support/helpers.js';
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
}, 120_000);

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
  }, 120_000);
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
  }, 300_000);
});
