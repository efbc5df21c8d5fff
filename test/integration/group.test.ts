// Consistency groups against a real cluster, with the rbd CLI as the oracle.
import { afterAll, describe, expect, it } from 'vitest';
import { Group, type Pool } from '../../lib/index.js';
import { rbdCli, rbdCliMajor, rbdExportMd5 } from '../support/clusters.js';
import { A, MiB, connectTo, expectCode, md5, rnd, uniq, usePool } from '../support/helpers.js';

// Pacific's CLI prints the member state as the raw enum (0 attached, 1 incomplete) and a complete
// group snapshot's state as 'ok'.
interface CliGroupImage { image: string; pool: string; state: number }
interface CliGroupSnap { snapshot: string; state: string }
interface CliSnap { id: number; name: string; namespace?: { type: string; pool?: string; group?: string; 'group snap'?: string } }

describe('consistency groups', () => {
  const fx = usePool(A);
  const groups: string[] = [];
  const groupName = (prefix: string) => {
    const g = uniq(prefix);
    groups.push(g);
    return g;
  };
  afterAll(async () => {
    // Groups first (removing one drops its snapshots and memberships), then usePool purges the images.
    for (const g of groups) await rbdCli(A, ['group', 'rm', `${A.pool}/${g}`]).catch(() => {});
  });

  const cliGroups = async (): Promise<string[]> => JSON.parse(await rbdCli(A, ['group', 'ls', '--format', 'json', A.pool]));
  const cliImages = async (g: string): Promise<CliGroupImage[]> =>
    JSON.parse(await rbdCli(A, ['group', 'image', 'list', '--format', 'json', `${A.pool}/${g}`]));
  const cliGroupSnaps = async (g: string): Promise<CliGroupSnap[]> =>
    JSON.parse(await rbdCli(A, ['group', 'snap', 'list', '--format', 'json', `${A.pool}/${g}`]));
  const cliSnaps = async (image: string): Promise<CliSnap[]> =>
    JSON.parse(await rbdCli(A, ['snap', 'ls', '--all', '--format', 'json', `${A.pool}/${image}`]));

  it('create/list/rename/remove agree with `rbd group ls`', async () => {
    const g1 = groupName('grp-a');
    const g2 = groupName('grp-b');
    const a = await fx.pool.createGroup(g1);
    expect(a).toBeInstanceOf(Group);
    expect(a.name).toBe(g1);
    expect(a.pool).toBe(fx.pool);
    await rbdCli(A, ['group', 'create', `${A.pool}/${g2}`]);
    const mine = (l: string[]) => l.filter((n) => n === g1 || n === g2 || groups.includes(n));
    expect(mine(await fx.pool.listGroups())).toEqual([g1, g2].sort());
    expect(mine(await cliGroups()).sort()).toEqual([g1, g2].sort());

    const g1b = groupName('grp-a2');
    await a.rename(g1b);
    expect(a.name).toBe(g1b);
    expect(await cliGroups()).toContain(g1b);
    expect(await cliGroups()).not.toContain(g1);

    const g2b = groupName('grp-b2');
    await fx.pool.renameGroup(g2, g2b);
    expect((await fx.pool.openGroup(g2b)).name).toBe(g2b);
    await expectCode(fx.pool.openGroup(g2), 'ENOENT');

    await fx.pool.removeGroup(g1b);
    await fx.pool.removeGroup(g2b);
    const after = await cliGroups();
    expect(after).not.toContain(g1b);
    expect(after).not.toContain(g2b);
    expect(await fx.pool.listGroups()).toEqual([...after].sort());
  });

  it('add/remove/list images agree with `rbd group image list`; image.getGroup() with `rbd info`', async () => {
    const g = groupName('grp-img');
    const group = await fx.pool.createGroup(g);
    const i1 = await fx.images.create(fx.pool, 'grp-m1', 4 * MiB);
    const i2 = await fx.images.create(fx.pool, 'grp-m2', 4 * MiB);
    const i3 = await fx.images.create(fx.pool, 'grp-m3', 4 * MiB);
    const img2 = await fx.pool.openImage(i2);
    expect(await group.listImages()).toEqual([]);
    await group.addImage(i1);
    await group.addImage(img2);
    await group.addImage({ pool: fx.pool, name: i3 });

    const list = await group.listImages();
    const byName = (a: { name: string }, b: { name: string }) => (a.name < b.name ? -1 : 1);
    expect([...list].sort(byName)).toEqual(
      [i1, i2, i3].sort().map((name) => ({ name, pool: A.pool, poolId: fx.pool.id, state: 'attached' })),
    );
    const cli = await cliImages(g);
    expect(cli.map((e) => e.image).sort()).toEqual([i1, i2, i3].sort());
    for (const e of cli) {
      expect(e.pool).toBe(A.pool);
      expect(e.state).toBe(0);
    }

    expect(await img2.getGroup()).toEqual({ pool: A.pool, poolId: fx.pool.id, name: g });
    const info = JSON.parse(await rbdCli(A, ['info', '--format', 'json', `${A.pool}/${i2}`])) as { group?: string };
    expect(info.group).toBe(`${A.pool}/${g}`);

    await group.removeImage(img2);
    await group.removeImage(i3);
    expect((await group.listImages()).map((e) => e.name)).toEqual([i1]);
    expect((await cliImages(g)).map((e) => e.image)).toEqual([i1]);
    expect(await img2.getGroup()).toBeUndefined();
    const info2 = JSON.parse(await rbdCli(A, ['info', '--format', 'json', `${A.pool}/${i2}`])) as { group?: string };
    expect(info2.group).toBeUndefined();

    // An image is in one group only.
    const other = await fx.pool.createGroup(groupName('grp-other'));
    await expectCode(other.addImage(i1), 'EEXIST');
    await img2.close();
    await group.removeImage(i1);
    await fx.pool.removeGroup(group.name);
    await fx.pool.removeGroup(other.name);
  });

  it('group snapshots: create/list/rename/remove vs the CLI; members show them in the group namespace; data frozen', async () => {
    const g = groupName('grp-snap');
    const group = await fx.pool.createGroup(g);
    const names = [await fx.images.create(fx.pool, 'grp-s1', 4 * MiB), await fx.images.create(fx.pool, 'grp-s2', 4 * MiB)];
    const before = names.map(() => rnd(1 * MiB));
    for (const [i, n] of names.entries()) {
      await group.addImage(n);
      const img = await fx.pool.openImage(n);
      await img.write(before[i], 1 * MiB);
      await img.close();
    }
    await group.createSnapshot('gs1');
    await group.createSnapshot('gs2', { skipQuiesce: true });
    // librbd lists group snapshots in its own order (by internal id on Pacific, not creation order).
    const snaps = await group.listSnapshots();
    expect([...snaps].sort((a, b) => (a.name < b.name ? -1 : 1))).toEqual([
      { name: 'gs1', state: 'complete' },
      { name: 'gs2', state: 'complete' },
    ]);
    const cliGs = await cliGroupSnaps(g);
    expect(cliGs.map((s) => s.snapshot)).toEqual(snaps.map((s) => s.name));
    // Release difference in the CLI's wording of a finished group snapshot: 'ok' on Pacific and Reef, 'complete'
    // from Tentacle (20) on.
    const finished = (await rbdCliMajor(A)) >= 20 ? 'complete' : 'ok';
    expect(cliGs.map((s) => s.state)).toEqual([finished, finished]);
    await group.renameSnapshot('gs2', 'gs2b');
    expect((await cliGroupSnaps(g)).map((s) => s.snapshot).sort()).toEqual(['gs1', 'gs2b']);
    expect((await group.listSnapshots()).map((s) => s.name).sort()).toEqual(['gs1', 'gs2b']);

    // Write after the snapshot, then read each member at its group-namespace snapshot.
    for (const [i, n] of names.entries()) {
      const img = await fx.pool.openImage(n);
      await img.write(rnd(1 * MiB), 1 * MiB);
      expect(await img.listSnapshots()).toEqual([]); // user namespace only
      const all = await img.listSnapshots({ allNamespaces: true });
      const cli = await cliSnaps(n);
      expect(all.map((s) => s.id)).toEqual(cli.map((s) => s.id));
      expect(all.map((s) => s.namespace)).toEqual(['group', 'group']);
      expect(all.map((s) => s.group)).toEqual([
        { pool: fx.pool.id, name: g, snapshot: 'gs1' },
        { pool: fx.pool.id, name: g, snapshot: 'gs2b' },
      ]);
      for (const s of all) {
        const c = cli.find((x) => x.id === s.id)!;
        expect(c.namespace?.type).toBe('group');
        expect(c.namespace?.group).toBe(g);
        expect(c.namespace?.['group snap']).toBe(s.group!.snapshot);
      }
      const gs1 = all.find((s) => s.group?.snapshot === 'gs1')!;
      const at = await fx.pool.openImage(n, { snapshot: { id: gs1.id } });
      expect(md5(await at.read(1 * MiB, 1 * MiB))).toBe(md5(before[i]));
      await at.close();
      await img.close();
    }

    await group.removeSnapshot('gs2b');
    expect((await cliGroupSnaps(g)).map((s) => s.snapshot)).toEqual(['gs1']);
    expect((await cliSnaps(names[0])).length).toBe(1);
    await group.removeSnapshot('gs1');
    expect(await cliGroupSnaps(g)).toEqual([]);
    expect(await cliSnaps(names[1])).toEqual([]);
  });

  it('rollbackSnapshot restores every member (rbd export md5) and reports progress', async () => {
    const group = await fx.pool.createGroup(groupName('grp-rb'));
    const names = [await fx.images.create(fx.pool, 'grp-r1', 8 * MiB), await fx.images.create(fx.pool, 'grp-r2', 4 * MiB)];
    const stateA: Buffer[] = [];
    for (const n of names) {
      await group.addImage(n);
      const img = await fx.pool.openImage(n);
      const a = rnd((await img.size()));
      await img.write(a, 0);
      await img.close();
      stateA.push(a);
    }
    await group.createSnapshot('A');
    for (const n of names) {
      const img = await fx.pool.openImage(n);
      await img.write(rnd(2 * MiB), 1 * MiB);
      await img.close();
    }
    for (const [i, n] of names.entries()) expect(await rbdExportMd5(A, n)).not.toBe(md5(stateA[i]));
    const reports: { done: number; total: number }[] = [];
    await group.rollbackSnapshot('A', { onProgress: (p) => reports.push(p) });
    for (const [i, n] of names.entries()) expect(await rbdExportMd5(A, n)).toBe(md5(stateA[i]));
    expect(reports.length).toBeGreaterThan(0);
    for (const r of reports) {
      expect(r.done).toBeGreaterThanOrEqual(0);
      expect(r.done).toBeLessThanOrEqual(r.total);
    }

    // An aborted signal rejects before anything starts: the head keeps its later writes.
    const img = await fx.pool.openImage(names[0]);
    const b = rnd(1 * MiB);
    await img.write(b, 0);
    await img.close();
    const ac = new AbortController();
    ac.abort();
    let called = false;
    await expectCode(group.rollbackSnapshot('A', { signal: ac.signal, onProgress: () => { called = true; } }), 'ABORT_ERR');
    expect(called).toBe(false);
    const expected = Buffer.from(stateA[0]);
    b.copy(expected, 0);
    expect(await rbdExportMd5(A, names[0])).toBe(md5(expected));
    await expectCode(group.rollbackSnapshot('missing'), 'ENOENT');
  });

  describe('errors', () => {
    it('openGroup of a missing group: ENOENT with pool and group context', async () => {
      const e = await expectCode(fx.pool.openGroup('no-such-group-xyz'), 'ENOENT');
      expect(e).toMatchObject({ errno: -2, pool: A.pool, group: 'no-such-group-xyz', operation: 'open group' });
      expect(e.message).toContain(`${A.pool}/no-such-group-xyz`);
    });

    it('createGroup of an existing name: EEXIST', async () => {
      const g = groupName('grp-dup');
      await fx.pool.createGroup(g);
      const e = await expectCode(fx.pool.createGroup(g), 'EEXIST');
      expect(e).toMatchObject({ errno: -17, pool: A.pool, group: g, operation: 'create group' });
    });

    it('removeGroup / renameGroup of a missing group: ENOENT', async () => {
      await expectCode(fx.pool.removeGroup('no-such-group-xyz'), 'ENOENT');
      await expectCode(fx.pool.renameGroup('no-such-group-xyz', 'whatever'), 'ENOENT');
    });

    it('addImage of a missing image: ENOENT naming the image; removeImage of a non-member succeeds, as in librbd', async () => {
      const g = groupName('grp-err');
      const group = await fx.pool.createGroup(g);
      const e = await expectCode(group.addImage('no-such-image-xyz'), 'ENOENT');
      expect(e).toMatchObject({ pool: A.pool, group: g, image: 'no-such-image-xyz' });
      expect(e.message).toContain('no-such-image-xyz');
      const n = await fx.images.create(fx.pool, 'grp-nm', 1 * MiB);
      await group.removeImage(n);
      await rbdCli(A, ['group', 'image', 'rm', `${A.pool}/${g}`, `${A.pool}/${n}`]);
      await expectCode(group.removeImage('no-such-image-xyz'), 'ENOENT');
    });

    it('addImage of an image in another namespace: EINVAL (librbd keeps a group within one namespace)', async () => {
      const ns = uniq('grpns');
      await rbdCli(A, ['namespace', 'create', `${A.pool}/${ns}`]);
      const nsPool = await fx.rados.openPool(A.pool, { namespace: ns });
      const n = uniq('grp-ns-img');
      try {
        await nsPool.createImage(n, 1 * MiB);
        const group = await fx.pool.createGroup(groupName('grp-ns'));
        const e = await expectCode(group.addImage({ pool: nsPool, name: n }), 'EINVAL');
        expect(e.message).toContain(`${A.pool}/${ns}/${n}`);
      } finally {
        await nsPool.removeImage(n).catch(() => {});
        await nsPool.close();
        await rbdCli(A, ['namespace', 'remove', `${A.pool}/${ns}`]).catch(() => {});
      }
    });

    it('snapshot errors: removeSnapshot/renameSnapshot missing ENOENT, duplicate create EEXIST', async () => {
      const g = groupName('grp-serr');
      const group = await fx.pool.createGroup(g);
      const e = await expectCode(group.removeSnapshot('nope'), 'ENOENT');
      expect(e).toMatchObject({ pool: A.pool, group: g, snapshot: 'nope' });
      await expectCode(group.renameSnapshot('nope', 'nope2'), 'ENOENT');
      await group.createSnapshot('s');
      await expectCode(group.createSnapshot('s'), 'EEXIST');
      await group.removeSnapshot('s');
    });

    it('a Group whose group was removed: list calls reject ENOENT (librbd alone would list it as empty)', async () => {
      const g = groupName('grp-gone');
      const group = await fx.pool.createGroup(g);
      await rbdCli(A, ['group', 'rm', `${A.pool}/${g}`]);
      await expectCode(group.listImages(), 'ENOENT');
      await expectCode(group.listSnapshots(), 'ENOENT');
      await expectCode(group.createSnapshot('s'), 'ENOENT');
    });

    it('bad arguments: TypeError/RangeError before any native call', async () => {
      const group = await fx.pool.createGroup(groupName('grp-args'));
      const p = fx.pool as unknown as Record<string, (...a: unknown[]) => Promise<unknown>>;
      await expect(p.createGroup(42)).rejects.toThrow(TypeError);
      await expect(p.createGroup('')).rejects.toThrow(RangeError);
      await expect(p.openGroup('a/b')).rejects.toThrow(TypeError);
      await expect(p.openGroup('a@b')).rejects.toThrow(TypeError);
      await expect(p.removeGroup(undefined)).rejects.toThrow(TypeError);
      await expect(p.renameGroup('a', '')).rejects.toThrow(RangeError);
      const gr = group as unknown as Record<string, (...a: unknown[]) => Promise<unknown>>;
      await expect(gr.addImage(7)).rejects.toThrow(TypeError);
      await expect(gr.addImage({ pool: {}, name: 'x' })).rejects.toThrow(TypeError);
      await expect(gr.addImage('a@b')).rejects.toThrow(TypeError);
      await expect(gr.createSnapshot('s', { bogus: true })).rejects.toThrow(TypeError);
      await expect(gr.createSnapshot('s', { skipQuiesce: true, ignoreQuiesceError: true })).rejects.toThrow(TypeError);
      await expect(gr.createSnapshot('s', { skipQuiesce: 'yes' })).rejects.toThrow(TypeError);
      await expect(gr.rollbackSnapshot('s', { onProgress: 5 })).rejects.toThrow(TypeError);
      await expect(gr.rollbackSnapshot('s', { signal: {} })).rejects.toThrow(TypeError);
      await expect(gr.rename('')).rejects.toThrow(RangeError);
      await expect(gr.renameSnapshot('a', 'b/c')).rejects.toThrow(TypeError);
      // Nothing was created by the rejected calls.
      expect(await group.listSnapshots()).toEqual([]);
    });

    it('methods after the pool (or connection) closed reject with ERR_CLOSED', async () => {
      const rados = await connectTo(A);
      const pool: Pool = await rados.openPool(A.pool);
      const g = groupName('grp-closed');
      const group = await pool.createGroup(g);
      const n = await fx.images.create(fx.pool, 'grp-cl', 1 * MiB);
      const img = await pool.openImage(n);
      await pool.close();
      await expectCode(group.listImages(), 'ERR_CLOSED');
      await expectCode(group.addImage(n), 'ERR_CLOSED');
      await expectCode(group.createSnapshot('s'), 'ERR_CLOSED');
      await expectCode(group.rollbackSnapshot('s'), 'ERR_CLOSED');
      await expectCode(group.rename('x'), 'ERR_CLOSED');
      expect(group.name).toBe(g);
      await expectCode(img.getGroup(), 'ERR_CLOSED');
      await expectCode(pool.listGroups(), 'ERR_CLOSED');
      await expectCode(pool.openGroup(g), 'ERR_CLOSED');
      // A group made from another pool handle on the same connection: closing the connection closes it.
      const pool2 = await rados.openPool(A.pool);
      const group2 = await pool2.openGroup(g);
      await rados.close();
      await expectCode(group2.listSnapshots(), 'ERR_CLOSED');
      // The group itself is untouched.
      expect(await fx.pool.listGroups()).toContain(g);
    });
  });
});
