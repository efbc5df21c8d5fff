import { describe, expect, it } from 'vitest';
import { cephCli, getClusters, rbdCli, rbdExportMd5, type TestCluster } from '../support/clusters.js';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Rados } from '../../lib/index.js';
import { snapshotChurn } from '../../tools/snapstress.js';

const clusters = getClusters();
const both = [clusters.a, clusters.b].filter((c): c is TestCluster => !!c);
const REPO = fileURLToPath(new URL('../..', import.meta.url));

/** `npx tsx tools/cluster/cli.ts <args>` from the repo root: exit code and output. */
function clusterCli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    execFile('npx', ['tsx', 'tools/cluster/cli.ts', ...args], { cwd: REPO, timeout: 90_000, encoding: 'utf8' },
      (err, stdout, stderr) => {
        const code = err ? (err as { code?: unknown }).code : 0;
        if (typeof code !== 'number') return reject(err ?? new Error('no exit code'));
        resolve({ code, stdout, stderr });
      });
  });
}

describe('test clusters', () => {
  it('provides two clusters', () => {
    expect(clusters.a.conf).toBeTruthy();
    expect(clusters.b?.conf).toBeTruthy();
    expect(process.env.RBD_STREAM_CONF_A ?? clusters.a.conf).toBeTruthy();
  });

  for (const c of both) {
    it(`cluster ${c.name}: rbd ls works and ceph -s shows 1 osd up`, async () => {
      const ls = await rbdCli(c, ['ls', '--format', 'json', c.pool]);
      expect(Array.isArray(JSON.parse(ls))).toBe(true);
      const s = JSON.parse(await cephCli(c, ['-s', '--format', 'json']));
      expect(['HEALTH_OK', 'HEALTH_WARN']).toContain(s.health.status);
      const om = s.osdmap.osdmap ?? s.osdmap;
      expect(om.num_up_osds).toBeGreaterThanOrEqual(1);
    });
  }

  it('clusters are independent (different fsids)', async () => {
    const fsids = await Promise.all(both.map(async (c) => (await cephCli(c, ['fsid'])).trim()));
    expect(fsids).toHaveLength(2);
    expect(fsids[0]).toMatch(/^[0-9a-f-]{36}$/);
    expect(fsids[0]).not.toBe(fsids[1]);
    if (clusters.started) expect(fsids).toEqual(both.map((c) => c.fsid));
  });

  it('rbdExportMd5 hashes an image written with the CLI', async () => {
    const c = clusters.a;
    const name = `md5test-${process.pid}-${Date.now()}`;
    const spec = `${c.pool}/${name}`;
    const data = Buffer.alloc(1 << 20);
    for (let i = 0; i < data.length; i += 4096) data.write(`block ${i}`, i);
    await rbdCli(c, ['create', '--size', '4M', spec]);
    try {
      await rbdCli(c, ['--no-progress', 'import', '-', `${c.pool}/${name}-i`], { input: data });
      // `import -` creates an image of exactly the input size.
      const expected = createHash('md5').update(data).digest('hex');
      expect(await rbdExportMd5(c, `${c.pool}/${name}-i`)).toBe(expected);
      // A fresh 4 MiB image reads back as zeros.
      const zeros = createHash('md5').update(Buffer.alloc(4 << 20)).digest('hex');
      expect(await rbdExportMd5(c, spec)).toBe(zeros);
    } finally {
      await rbdCli(c, ['--no-progress', 'rm', `${c.pool}/${name}-i`]).catch(() => {});
      await rbdCli(c, ['--no-progress', 'rm', spec]);
    }
    expect(JSON.parse(await rbdCli(c, ['ls', '--format', 'json', c.pool]))).not.toContain(name);
  });

  it('npm run cluster -- status --json reports the set (cli.ts as a child process), never its keys', async () => {
    // The set dir: given when the suite started the clusters; else the one holding their confs.
    const setDir = clusters.dir ?? dirname(dirname(clusters.a.conf));
    const r = await clusterCli(['status', '--json', '--dir', setDir]);
    const st = JSON.parse(r.stdout);
    expect(st.dir).toBe(setDir);
    if (!clusters.started && !existsSync(join(setDir, 'state.json'))) {
      // Clusters made by something else: the tool says it has no set there, and fails.
      expect(st).toMatchObject({ exists: false, clusters: {} });
      expect(r.code).toBe(1);
    } else {
      expect(r.code, r.stderr).toBe(0);
      expect(st.exists).toBe(true);
      for (const c of both) {
        const s = st.clusters[c.name];
        expect(s, `cluster ${c.name} in ${Object.keys(st.clusters).join(',')}`).toBeDefined();
        expect(s).toMatchObject({
          name: c.name, conf: c.conf, reachable: true,
          health: expect.stringMatching(/^HEALTH_(OK|WARN)$/), mgrAvailable: true, numOsds: 1, osdsUp: 1, osdsIn: 1,
        });
        expect(s.fsid).toBe((await cephCli(c, ['fsid'])).trim());
        expect(s.pgsActive).toBe(s.pgs);
        for (const d of ['mon', 'mgr', 'osd']) expect(s.daemons[d]).toMatchObject({ pid: expect.any(Number), alive: true });
        // Keys stay in the keyring files.
        const key = /key = (\S+)/.exec(readFileSync(c.keyring ?? join(dirname(c.conf), 'keyring'), 'utf8'))?.[1];
        expect(key).toBeTruthy();
        expect(r.stdout).not.toContain(key);
      }
    }
    // No set in a dir: exit 1 and exists: false.
    const none = await clusterCli(['status', '--json', '--dir', join(setDir, `no-such-set-${process.pid}`)]);
    expect(none.code).toBe(1);
    expect(JSON.parse(none.stdout)).toMatchObject({ exists: false, clusters: {} });
  });

  // With several OSD op threads, memstore segfaulted within 4–10 s of this churn (3 of 3 runs,
  // Ceph 16.2.15): a snap trim iterating the shared snapmapper omap while another PG wrote it.
  it('cluster b survives 20 s of snapshot churn across PGs (writes, snapshots, trims)', async () => {
    const c = clusters.b!;
    // An operation timeout: a crashed OSD fails the churn instead of hanging it.
    const r = await Rados.connect({ conf: c.conf, keyring: c.keyring, user: c.user, timeoutMs: 20_000 });
    try {
      const rounds = await snapshotChurn(await r.openPool(c.pool), { seconds: 20, prefix: `churn-${process.pid}` });
      expect(rounds).toBeGreaterThan(50);
      // Every image was removed at the end: the OSD answered throughout.
      expect((await (await r.openPool(c.pool)).listImages()).filter((n) => n.startsWith(`churn-${process.pid}`))).toEqual([]);
    } finally {
      await r.close();
    }
  });
});
