// syncGroup (issue 13): crash-consistent replication of a consistency group, real clusters a → b,
// the rbd CLI as oracle (`rbd export … | md5sum`, `rbd group snap ls`), and a writer child making
// dependent writes across two members while rounds run (test/support/consistency.ts).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Pool, type Rados } from '../../lib/index.js';
import { rbdCli } from '../support/clusters.js';
import { A, B as maybeB, Images, MiB, connectTo } from '../support/helpers.js';
import { RING_BYTES, checkWritePair, readRing, startWriter, type Writer } from '../support/consistency.js';

const B = maybeB ?? A;
const imagesA = new Images(A);
const imagesB = new Images(B);
const groupsA: string[] = [];
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
  await imagesA.purge();
  await imagesB.purge();
}, 120_000);

const groupName = (p: string) => {
  const g = `${p}-${process.pid}-${Date.now().toString(36)}`;
  groupsA.push(g);
  return g;
};

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
