// Over ~400 lines: every scenario (library and the failback --mirror CLI) needs the same two clusters with rbd-mirror daemons and
// bootstrapped peers, which take ~30 s to set up; one file sets them up once.
/**
 * RBD mirroring end to end: two clusters, an rbd-mirror daemon on each, peers bootstrapped both
 * ways, on a dedicated pool (so the other test files' pool `rbd` is untouched).
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  Rados,
  isRbdError,
  type RbdError,
  failback,
  failover,
  type FailoverProgress,
  type Image,
  type Pool,
  type PoolMirror,
} from '../../lib/index.js';
import { startMirrorDaemon, status as setStatus, stopMirrorDaemon } from '../../tools/cluster/index.js';
import { onTerminal } from '../support/terminal.js';
import { destArgs, runRbdStream } from '../support/cli-process.js';
import { cephCli, cephMajor, clusterArgs, getClusters, rbdCli, rbdExportMd5, type TestCluster } from '../support/clusters.js';

const clusters = getClusters();
const POOL = `rbdstream-mirror-${process.pid}`;
const SCRATCH = `rbdstream-mirror-scratch-${process.pid}`;
const MiB = 1 << 20;
const SYNC_TIMEOUT = 90_000;

let A: TestCluster;
let B: TestCluster;
let ra: Rados;
let rb: Rados;
let pa: Pool;
let pb: Pool;
let ma: PoolMirror;
let mb: PoolMirror;
let scratch: Pool;
let token = '';
// Between releases (the pair runs) the peer users get AES keys: Tentacle's default, AES-256, is of
// no use to a Pacific or Reef rbd-mirror (docs/releases.md). Same release: the mon's default.
let peerKeyType: 'aes' | 'default' = 'default';
const startedDaemons: string[] = [];
const opened: Image[] = [];

async function createPool(c: TestCluster, name: string) {
  await cephCli(c, ['osd', 'pool', 'rm', name, name, '--yes-i-really-really-mean-it']).catch(() => {});
  await cephCli(c, ['osd', 'pool', 'create', name, '8']);
  await rbdCli(c, ['pool', 'init', name]);
}

async function removePool(c: TestCluster, name: string) {
  await cephCli(c, ['osd', 'pool', 'rm', name, name, '--yes-i-really-really-mean-it']).catch(() => {});
}

function connect(c: TestCluster) {
  return Rados.connect({ conf: c.conf, keyring: c.keyring, user: c.user });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until<T>(what: string, fn: () => Promise<T | undefined>, timeoutMs = SYNC_TIMEOUT): Promise<T> {
  const end = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v !== undefined) return v;
    } catch (e) {
      if ((e as { fatal?: boolean }).fatal) throw e; // not worth waiting for
      last = e;
    }
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}${last ? `: ${(last as Error).message}` : ''}`);
    await sleep(500);
  }
}

async function open(pool: Pool, name: string): Promise<Image> {
  const img = await pool.openImage(name);
  opened.push(img);
  return img;
}

/** Opens the image rbd-mirror creates on the peer, once it exists. */
function openWhenReplicated(pool: Pool, name: string): Promise<Image> {
  return until(`${pool.spec}/${name} to appear`, async () => {
    try {
      return await open(pool, name);
    } catch (e) {
      if ((e as { code?: string }).code === 'ENOENT') return undefined;
      throw e;
    }
  });
}

async function writeRandom(img: Image, offsets: number[], len: number) {
  for (const off of offsets) await img.write(randomBytes(len), off);
  await img.flush();
}

const md5 = (c: TestCluster, name: string) => rbdExportMd5(c, `${POOL}/${name}`);

// rbd-mirror polls on 30 s timers by default (new peers, failed image replayers, deletions),
// which made this file wait more than it tested. Shorter intervals for the suite's daemons,
// set before they start and removed afterwards (the mirror benchmark keeps the defaults).
const DAEMON_TUNING: [string, string][] = [
  ['rbd_mirror_pool_replayers_refresh_interval', '2'],
  ['rbd_mirror_image_state_check_interval', '2'],
  ['rbd_mirror_delete_retry_interval', '2'],
  ['rbd_mirror_journal_poll_age', '1'],
  ['rbd_mirror_leader_heartbeat_interval', '1'],
];

beforeAll(async () => {
  if (!clusters.b) throw new Error('mirror tests need two clusters (RBD_STREAM_CONF_B)');
  A = clusters.a;
  B = clusters.b;
  for (const c of [A, B]) {
    for (const [k, v] of DAEMON_TUNING) await cephCli(c, ['config', 'set', 'client', k, v]);
  }
  if (clusters.started && clusters.dir) {
    const st = await setStatus(clusters.dir);
    for (const n of ['a', 'b']) {
      if (!st.clusters[n]?.daemons.mirror?.alive) {
        await startMirrorDaemon(clusters.dir, n);
        startedDaemons.push(n);
      }
    }
  } else if (process.env.RBD_STREAM_MIRROR_DAEMONS !== '1') {
    throw new Error(
      'mirror tests on existing clusters need an rbd-mirror daemon on each; start them and set RBD_STREAM_MIRROR_DAEMONS=1',
    );
  }
  await Promise.all([createPool(A, POOL), createPool(B, POOL), createPool(A, SCRATCH)]);
  [ra, rb] = await Promise.all([connect(A), connect(B)]);
  [pa, pb, scratch] = await Promise.all([ra.openPool(POOL), rb.openPool(POOL), ra.openPool(SCRATCH)]);
  ma = pa.mirror;
  mb = pb.mirror;
  await Promise.all([ma.setMode('image'), mb.setMode('image')]);
  await Promise.all([ra.mirror.setSiteName('site-a'), rb.mirror.setSiteName('site-b')]);
  const [majorA, majorB] = await Promise.all([cephMajor(A, 'mon'), cephMajor(B, 'mon')]);
  if (majorA !== majorB) peerKeyType = 'aes';
  token = await ma.createBootstrapToken({ peerKeyType });
  await mb.importBootstrapToken(token, { direction: 'rx-tx', peerKeyType });
}, 180_000);

afterAll(async () => {
  for (const img of opened) await img.close().catch(() => {});
  if (ra) {
    await ra.mirror.removeSnapshotSchedule({ pool: POOL }).catch(() => {});
    await ra.mirror.setSiteName('').catch(() => {});
  }
  if (rb) await rb.mirror.setSiteName('').catch(() => {});
  await Promise.all([ra?.close(), rb?.close()]);
  if (A) await Promise.all([removePool(A, POOL), removePool(A, SCRATCH), B && removePool(B, POOL)]);
  for (const n of startedDaemons) await stopMirrorDaemon(clusters.dir!, n).catch(() => {});
  for (const c of [A, B]) {
    if (c) for (const [k] of DAEMON_TUNING) await cephCli(c, ['config', 'rm', 'client', k]).catch(() => {});
  }
});

describe('pool and site', () => {
  it('mode and site names', async () => {
    expect(await ma.getMode()).toBe('image');
    expect(await mb.getMode()).toBe('image');
    expect(await ra.mirror.getSiteName()).toBe('site-a');
    expect(await rb.mirror.getSiteName()).toBe('site-b');
    const sm = scratch.mirror;
    // One mirror object per handle.
    expect(scratch.mirror).toBe(sm);
    expect(ra.mirror).toBe(ra.mirror);
    expect(await sm.getMode()).toBe('disabled');
    await sm.setMode('pool');
    expect(await sm.getMode()).toBe('pool');
    await sm.setMode('disabled');
    expect(await sm.getMode()).toBe('disabled');
    await expect(sm.setMode('everything' as never)).rejects.toThrow(TypeError);
  });

  it('rx-tx bootstrap registered the peers on both sites; keys are never listed', async () => {
    const [peersA, peersB] = await Promise.all([ma.listPeers(), mb.listPeers()]);
    expect(peersB).toHaveLength(1);
    expect(peersB[0]).toMatchObject({ siteName: 'site-a', direction: 'rx-tx', keySet: true });
    expect(peersB[0].monHost).toMatch(/127\.0\.0\.1/);
    expect(peersB[0].uuid).toMatch(/^[0-9a-f-]{36}$/);
    expect(peersA).toHaveLength(1);
    expect(peersA[0]).toMatchObject({ siteName: 'site-b', direction: 'rx-tx' });
    const { key } = JSON.parse(Buffer.from(token, 'base64').toString('utf8')) as { key: string };
    expect(key.length).toBeGreaterThan(20);
    const listed = JSON.stringify([peersA, peersB]);
    expect(listed).not.toContain(key);
  });

  it('peers: add with mon host and key, set direction/name/client, remove', async () => {
    const sm = scratch.mirror;
    await sm.setMode('image');
    try {
      const key = randomBytes(16).toString('base64');
      const uuid = await sm.addPeer('client.remote-user@site-x', { direction: 'rx-only', monHost: 'v2:127.0.0.1:1', key });
      let [p] = await sm.listPeers();
      expect(p).toMatchObject({ uuid, siteName: 'site-x', clientName: 'client.remote-user', direction: 'rx-only', monHost: 'v2:127.0.0.1:1', keySet: true });
      expect(JSON.stringify(p)).not.toContain(key);
      await sm.setPeerDirection(uuid, 'rx-tx');
      await sm.setPeerSiteName(uuid, 'site-y');
      await sm.setPeerClient(uuid, 'other');
      await sm.setPeerMonHost(uuid, 'v2:127.0.0.1:2');
      [p] = await sm.listPeers();
      expect(p).toMatchObject({ uuid, siteName: 'site-y', clientName: 'client.other', direction: 'rx-tx', monHost: 'v2:127.0.0.1:2', keySet: true });
      const key2 = randomBytes(16).toString('base64');
      await sm.setPeerKey(uuid, key2);
      [p] = await sm.listPeers();
      expect(p.keySet).toBe(true);
      expect(p.monHost).toBe('v2:127.0.0.1:2');
      expect(JSON.stringify(p)).not.toContain(key2);
      const ke = (await sm.setPeerKey('00000000-0000-4000-8000-000000000001', key2).catch((x: Error) => x)) as Error;
      expect(ke).toMatchObject({ code: 'ENOENT' });
      expect(ke.message + JSON.stringify(ke)).not.toContain(key2);
      await sm.removePeer(uuid);
      expect(await sm.listPeers()).toEqual([]);
      // A bad key is refused without echoing it.
      const bad = 'not a key!';
      const e = await sm.addPeer('site-z', { key: bad }).catch((x: Error) => x);
      expect(e).toBeInstanceOf(TypeError);
      expect((e as Error).message).not.toContain(bad);
      await expect(sm.addPeer('a@b@', {})).rejects.toThrow(TypeError);
      await expect(sm.addPeer('site-z', { direction: 'tx-only' as never })).rejects.toThrow(TypeError);
    } finally {
      await sm.setMode('disabled');
    }
  });

  it('errors: unknown peer uuid (ENOENT), garbage bootstrap token (EINVAL, token not echoed)', async () => {
    const unknown = '00000000-0000-4000-8000-000000000000';
    const e1 = await ma.removePeer(unknown).catch((e: Error) => e);
    expect(e1).toMatchObject({ code: 'ENOENT' });
    expect((e1 as Error).message).toContain(unknown);
    const e2 = await ma.setPeerDirection(unknown, 'rx-only').catch((e: Error) => e);
    expect(e2).toMatchObject({ code: 'ENOENT' });

    const garbage = Buffer.from(JSON.stringify({ fsid: 'x', client_id: 'y', key: 'SECRETSECRETSECRET', mon_host: 'z' })).toString('base64');
    for (const t of [garbage, 'definitely-not-a-token']) {
      const e = (await scratch.mirror.importBootstrapToken(t).catch((x: Error) => x)) as Error & { code: string };
      expect(e).toBeInstanceOf(Error);
      expect(e.code).toBe('EINVAL');
      expect(e.message).toMatch(t === garbage ? /peer site x, mon host z/ : /not a valid bootstrap token/);
      expect(e.message).not.toContain(t);
      expect(e.message).not.toContain('SECRETSECRETSECRET');
      expect(JSON.stringify(e)).not.toContain('SECRETSECRETSECRET');
    }
    const e3 = await mb.importBootstrapToken('definitely-not-a-token').catch((x: Error) => x);
    expect(e3).toMatchObject({ code: 'EINVAL' });
    expect((e3 as Error).message).toMatch(/not a valid bootstrap token/);
    await expect(ma.importBootstrapToken(token, { direction: 'tx-only' as never })).rejects.toThrow(TypeError);
    await expect(ma.importBootstrapToken(token, { peerKeyType: 'aes256k' as never })).rejects.toThrow(TypeError);
    await expect(ma.createBootstrapToken({ peerKeyType: 'AES' as never })).rejects.toThrow(TypeError);
    await expect(ma.createBootstrapToken({ keyType: 'aes' } as never)).rejects.toThrow(TypeError);
  });

  it('errors: enable on a pool with mirroring disabled; status of a non-mirrored image', async () => {
    await scratch.createImage('plain', 4 * MiB);
    const img = await open(scratch, 'plain');
    const e = await img.mirror.enable('snapshot').catch((x: Error) => x);
    expect(e).toMatchObject({ code: 'EINVAL' });
    expect((e as Error).message).toMatch(/mirroring is disabled on pool/);

    await pa.createImage('not-mirrored', 4 * MiB);
    const nm = await open(pa, 'not-mirrored');
    expect(await nm.mirror.getInfo()).toMatchObject({ state: 'disabled', primary: false });
    expect((await nm.mirror.getInfo()).mode).toBeUndefined();
    const se = await nm.mirror.getStatus().catch((x: Error) => x);
    expect(se).toMatchObject({ code: 'EINVAL', operation: 'get mirror image status', image: 'not-mirrored' });
    await expect(nm.mirror.getMode()).rejects.toMatchObject({ code: 'EINVAL' });
    for (const op of [() => nm.mirror.promote(), () => nm.mirror.demote(), () => nm.mirror.createSnapshot()]) {
      const err = (await op().catch((x: Error) => x)) as Error;
      expect(err).toMatchObject({ code: 'EINVAL', image: 'not-mirrored' });
      expect(err.message).toMatch(/mirroring is not enabled on the image/);
    }
  });
});

describe('snapshot mode', () => {
  let a: Image;
  let b: Image;

  it('enable, write, mirror snapshot, sync, compare; second incremental round', async () => {
    await pa.createImage('snap1', 16 * MiB);
    a = await open(pa, 'snap1');
    await writeRandom(a, [0, 5 * MiB, 12 * MiB + 4096], 256 * 1024);
    await a.mirror.enable('snapshot');
    const info = await a.mirror.getInfo();
    expect(info).toMatchObject({ state: 'enabled', primary: true, mode: 'snapshot' });
    expect(info.globalId).toMatch(/^[0-9a-f-]{36}$/);
    const sid = await a.mirror.createSnapshot();
    const snaps = await a.listSnapshots({ allNamespaces: true });
    expect(snaps.find((s) => s.id === sid)?.mirror?.state).toBe('primary');

    b = await openWhenReplicated(pb, 'snap1');
    const r1 = await a.mirror.waitForSync({ peer: b, timeoutMs: SYNC_TIMEOUT });
    expect(r1).toEqual({ mode: 'snapshot', snapshotId: sid });
    const copy = (await b.listSnapshots({ allNamespaces: true })).find((s) => s.mirror?.primarySnapId === sid);
    expect(copy?.mirror).toMatchObject({ state: 'non-primary', complete: true });
    expect(await b.mirror.getInfo()).toMatchObject({ state: 'enabled', primary: false, mode: 'snapshot', globalId: info.globalId });
    expect(await md5(B, 'snap1')).toBe(await md5(A, 'snap1'));
    const ro = await pb.openImage('snap1', { readOnly: true });
    opened.push(ro);
    await expect(a.mirror.waitForSync({ peer: ro })).rejects.toThrow(/readOnly/);
    await expect(b.mirror.waitForSync()).rejects.toMatchObject({ code: 'EINVAL' });

    // Round 2: a small delta.
    await writeRandom(a, [3 * MiB, 15 * MiB], 64 * 1024);
    const sid2 = await a.mirror.createSnapshot();
    expect(sid2).toBeGreaterThan(sid);
    // Without the peer handle: the peer's status report.
    expect(await a.mirror.waitForSync({ timeoutMs: SYNC_TIMEOUT })).toEqual({ mode: 'snapshot', snapshotId: sid2 });
    await a.mirror.waitForSync({ peer: b, timeoutMs: SYNC_TIMEOUT });
    expect(await md5(B, 'snap1')).toBe(await md5(A, 'snap1'));
    await expect(b.write(Buffer.alloc(512), 0)).rejects.toMatchObject({ code: 'EROFS' });
  });

  it('global status: each site with state, up, last update and parsed replay JSON', async () => {
    const st = await until('up+replaying on site-b', async () => {
      const s = await a.mirror.getStatus();
      const r = s.remotes.find((x) => x.siteName === 'site-b');
      return r?.up && r.state === 'replaying' && r.replay?.lastSnapshotSyncSeconds !== undefined ? s : undefined;
    });
    expect(st).toMatchObject({ name: 'snap1', state: 'enabled', primary: true });
    expect(st.local).toMatchObject({ siteName: 'site-a', local: true, state: 'stopped', up: true, summary: 'up+stopped' });
    expect(st.local?.description).toBe('local image is primary');
    const r = st.remotes[0];
    expect(r.summary).toBe('up+replaying');
    expect(r.description).toBe('replaying');
    expect(r.lastUpdate).toBeInstanceOf(Date);
    expect(Math.abs(Date.now() - r.lastUpdate!.getTime())).toBeLessThan(10 * 60_000);
    expect(r.replay).toMatchObject({ replayState: 'idle' });
    expect(typeof r.replay!.bytesPerSecond).toBe('number');
    expect(typeof r.replay!.lastSnapshotSyncSeconds).toBe('number');
    expect(r.replay!.localSnapshotTimestamp).toBe(r.replay!.remoteSnapshotTimestamp);
    expect(r.replay!.raw).toHaveProperty('replay_state', 'idle');

    const sb = await b.mirror.getStatus();
    expect(sb.primary).toBe(false);
    expect(sb.local?.siteName).toBe('site-b');
  });

  it('pool status summary, image status list (all pages), mirrored images', async () => {
    await pa.createImage('snap2', 4 * MiB);
    const s2 = await open(pa, 'snap2');
    await s2.mirror.enable('snapshot');
    const all = await ma.listImageStatus({ pageSize: 1 });
    expect(all.map((s) => s.name).sort()).toEqual(['snap1', 'snap2']);
    expect(all.every((s) => s.globalId && s.id)).toBe(true);
    const mirrored = await ma.listMirroredImages();
    expect(mirrored.map((x) => [x.name, x.mode, x.primary]).sort()).toEqual([
      ['snap1', 'snapshot', true],
      ['snap2', 'snapshot', true],
    ]);
    expect(await ma.listMirroredImages({ mode: 'journal', pageSize: 1 })).toEqual([]);
    // The CLI is the oracle for the summary.
    const sum = await until('daemon health OK on site-b', async () => {
      const s = await mb.getStatusSummary();
      return s.daemonHealth === 'OK' && s.daemons[0]?.instanceId ? s : undefined;
    });
    const cli = JSON.parse(await rbdCli(B, ['mirror', 'pool', 'status', POOL, '--verbose', '--format', 'json'])) as {
      summary: { daemon_health: string; states: Record<string, number> };
      daemons: { service_id: string; instance_id: string; client_id: string; leader: boolean; health: string }[];
    };
    expect(sum.daemonHealth).toBe(cli.summary.daemon_health);
    expect(sum.daemons.map((d) => [d.serviceId, d.instanceId, d.clientId, d.leader, d.health])).toEqual(
      cli.daemons.map((d) => [d.service_id, d.instance_id, d.client_id, d.leader, d.health]),
    );
    expect(sum.total).toBe(Object.values(sum.states).reduce((x, y) => x + y!, 0));
    expect(sum.total).toBeGreaterThanOrEqual(1);
    expect(['OK', 'WARNING']).toContain(sum.imageHealth);
    await s2.mirror.disable();
    expect((await s2.mirror.getInfo()).state).toBe('disabled');
  });

  it('errors: promote an already-primary image; demote a non-primary one', async () => {
    const e = await a.mirror.promote().catch((x: Error) => x);
    expect(e).toMatchObject({ code: 'EINVAL', operation: 'promote mirrored image', image: 'snap1' });
    expect((e as Error).message).toMatch(/already primary/);
    await expect(b.mirror.demote()).rejects.toMatchObject({ code: 'EINVAL' });
    // Non-forced promote of the non-primary while the primary is active.
    await expect(b.mirror.promote()).rejects.toMatchObject({ code: 'EBUSY' });
  });

  it('demote/promote round trip via failover, with progress', async () => {
    const steps: FailoverProgress[] = [];
    await failover({ primary: a, secondary: b, timeoutMs: SYNC_TIMEOUT, onProgress: (p) => steps.push(p) });
    expect(steps.map((s) => s.step)).toEqual(['check', 'demote', 'wait', 'promote', 'done']);
    expect((await a.mirror.getInfo()).primary).toBe(false);
    expect((await b.mirror.getInfo()).primary).toBe(true);
    await writeRandom(b, [MiB], 128 * 1024);
    await b.mirror.createSnapshot();
    await b.mirror.waitForSync({ peer: a, timeoutMs: SYNC_TIMEOUT });
    expect(await md5(A, 'snap1')).toBe(await md5(B, 'snap1'));
    // And back.
    await failover({ primary: b, secondary: a, timeoutMs: SYNC_TIMEOUT });
    expect((await a.mirror.getInfo()).primary).toBe(true);
    expect((await b.mirror.getInfo()).primary).toBe(false);
    expect(await md5(A, 'snap1')).toBe(await md5(B, 'snap1'));
    // A failover onto an image that is already primary is refused at the check step.
    await expect(failover({ primary: b, secondary: a })).rejects.toMatchObject({ code: 'EEXIST', step: 'check' });
  });

  it('forced promote → split-brain → failback (demote + resync) → back in sync', async () => {
    // Site A "fails": B is promoted by force while A still thinks it is primary.
    await b.mirror.promote({ force: true });
    expect((await a.mirror.getInfo()).primary).toBe(true);
    expect((await b.mirror.getInfo()).primary).toBe(true);
    // Until B's rbd-mirror notices the promotion and stops replaying, it holds B's exclusive lock
    // and denies it to writers: librbd answers EROFS. Only that is retried.
    await until('B writable after the forced promote', async () => {
      try {
        await writeRandom(b, [2 * MiB, 9 * MiB], 128 * 1024);
        return true;
      } catch (e) {
        if ((e as { code?: string }).code === 'EROFS') return undefined;
        throw Object.assign(e as Error, { fatal: true });
      }
    }, 60_000);
    await b.mirror.createSnapshot();
    await writeRandom(a, [4 * MiB], 4096); // divergent write on the old primary
    const wantB = await md5(B, 'snap1');
    expect(await md5(A, 'snap1')).not.toBe(wantB);

    const steps: string[] = [];
    const idx = opened.indexOf(a);
    if (idx >= 0) opened.splice(idx, 1);
    a = await failback({ primary: a, secondary: b, timeoutMs: 150_000, onProgress: (p) => steps.push(p.step) });
    opened.push(a);
    expect(steps).toContain('resync');
    expect(steps.at(-1)).toBe('done');
    expect((await a.mirror.getInfo()).primary).toBe(true);
    expect((await b.mirror.getInfo()).primary).toBe(false);
    expect(await md5(A, 'snap1')).toBe(wantB);
    expect(await md5(B, 'snap1')).toBe(wantB);
  }, 200_000);
});

describe('journal mode', () => {
  it('enable turns on exclusive-lock + journaling, write, wait, compare', async () => {
    await pa.createImage('jrnl', 8 * MiB, { features: ['layering'] });
    const a = await open(pa, 'jrnl');
    await a.mirror.enable('journal');
    const st = await a.stat();
    expect(st.features).toEqual(expect.arrayContaining(['exclusive-lock', 'journaling']));
    expect(await a.mirror.getMode()).toBe('journal');
    await writeRandom(a, [0, 3 * MiB, 7 * MiB], 128 * 1024);
    const b = await openWhenReplicated(pb, 'jrnl');
    expect(await a.mirror.waitForSync({ timeoutMs: SYNC_TIMEOUT })).toEqual({ mode: 'journal', entriesBehindPrimary: 0 });
    expect(await b.mirror.getInfo()).toMatchObject({ primary: false, mode: 'journal' });
    expect(await md5(B, 'jrnl')).toBe(await md5(A, 'jrnl'));
    const s = await a.mirror.getStatus();
    expect(s.remotes[0].replay?.entriesBehindPrimary).toBe(0);
    expect(s.remotes[0].replay?.primaryPosition).toMatchObject({ entryTid: expect.any(Number) });
  });

  it('journal mode on a read-only handle fails with a clear message', async () => {
    await pa.createImage('jrnl-ro', 4 * MiB, { features: ['layering'] });
    const ro = await pa.openImage('jrnl-ro', { readOnly: true });
    opened.push(ro);
    await expect(ro.mirror.enable('journal')).rejects.toMatchObject({ code: 'EROFS' });
  });
});

/**
 * Whether a mgr module runs, from the cluster itself: listed as always-on or enabled by
 * `ceph mgr module ls`, and not named by a health check (Debian trixie's Reef mgr lists rbd_support
 * as always-on but cannot load it: MGR_MODULE_DEPENDENCY "Module 'rbd_support' has failed dependency").
 */
async function mgrModuleRunning(c: TestCluster, name: string): Promise<{ running: boolean; why: string }> {
  const ls = JSON.parse(await cephCli(c, ['mgr', 'module', 'ls', '--format', 'json'])) as
    { always_on_modules?: string[] | Record<string, string[]>; enabled_modules?: string[] };
  const always = Array.isArray(ls.always_on_modules) ? ls.always_on_modules : Object.values(ls.always_on_modules ?? {}).flat();
  const on = [...always, ...(ls.enabled_modules ?? [])].includes(name);
  const health = JSON.parse(await cephCli(c, ['health', 'detail', '--format', 'json'])) as
    { checks?: Record<string, { detail?: { message: string }[] }> };
  const failed = Object.values(health.checks ?? {}).flatMap((ch) => ch.detail ?? []).map((d) => d.message)
    .find((m) => m.includes(`Module '${name}'`));
  return { running: on && !failed, why: failed ?? (on ? 'running' : 'neither always-on nor enabled') };
}

describe('snapshot schedules (mgr)', () => {
  it("rbd_support not running: every schedule call rejects with ERR_MGR_MODULE_UNAVAILABLE naming it (running: the module's empty answers)", async () => {
    const mod = await mgrModuleRunning(A, 'rbd_support');
    console.log(`rbd_support on cluster a: ${mod.why}`);
    const calls: [string, () => Promise<unknown>][] = [
      ['add', () => ra.mirror.addSnapshotSchedule({ pool: POOL, interval: '6h' })],
      ['list', () => ra.mirror.listSnapshotSchedules({ pool: POOL, recursive: true })],
      ['status', () => ra.mirror.snapshotScheduleStatus({ pool: POOL })],
      ['remove', () => ra.mirror.removeSnapshotSchedule({ pool: POOL })],
    ];
    if (mod.running) {
      // The module answers: no schedules yet, so list/status are empty and remove is ENOENT (add is the next test's).
      expect(await calls[1][1]()).toEqual([]);
      expect(await calls[2][1]()).toEqual([]);
      await expect(calls[3][1]()).rejects.toMatchObject({ code: 'ENOENT' });
      return;
    }
    for (const [what, call] of calls) {
      const err = await call().then(() => undefined, (e: unknown) => e);
      expect(isRbdError(err, 'ERR_MGR_MODULE_UNAVAILABLE'), `${what}: ${String(err)}`).toBe(true);
      const e = err as RbdError;
      expect(e.message).toMatch(/rbd_support module is not running/);
      expect(e.message).toMatch(/rbd mirror snapshot schedule (add|list|status|remove)/);
      expect(e.status).toMatch(/No handler found/); // the mgr's own answer
      expect(e.errno).toBe(-22);
    }
    // Argument checks come first, module or not.
    await expect(ra.mirror.addSnapshotSchedule({ pool: POOL, interval: '6 hours' })).rejects.toThrow(TypeError);
  });

  it('add, list (recursive), status, remove with exact values (where rbd_support runs)', async () => {
    const mod = await mgrModuleRunning(A, 'rbd_support');
    if (!mod.running) {
      // Asserted by the previous test; here: the first call already says so.
      await expect(ra.mirror.addSnapshotSchedule({ pool: POOL, interval: '6h' })).rejects.toMatchObject({ code: 'ERR_MGR_MODULE_UNAVAILABLE' });
      return;
    }
    await ra.mirror.addSnapshotSchedule({ pool: POOL, interval: '6h' });
    await ra.mirror.addSnapshotSchedule({ pool: POOL, interval: '1d', startTime: '14:00' });
    await ra.mirror.addSnapshotSchedule({ pool: POOL, image: 'snap1', interval: '30m' });
    expect(await ra.mirror.listSnapshotSchedules({ pool: POOL })).toEqual([
      {
        levelSpec: `${POOL}/`,
        pool: POOL,
        namespace: '',
        image: '',
        schedules: [
          { interval: '6h', startTime: null },
          { interval: '1d', startTime: '14:00:00' },
        ],
      },
    ]);
    const rec = await ra.mirror.listSnapshotSchedules({ pool: POOL, recursive: true });
    expect(rec.map((l) => [l.levelSpec, l.image, l.schedules])).toEqual([
      [`${POOL}/`, '', [{ interval: '6h', startTime: null }, { interval: '1d', startTime: '14:00:00' }]],
      [`${POOL}/snap1`, 'snap1', [{ interval: '30m', startTime: null }]],
    ]);
    expect(await ra.mirror.listSnapshotSchedules({ pool: POOL, image: 'snap1' })).toHaveLength(1);

    const t0 = Date.now();
    const sched = await until('scheduled image in status', async () => {
      const s = await ra.mirror.snapshotScheduleStatus({ pool: POOL });
      return s.find((x) => x.image === 'snap1');
    }, 120_000);
    expect(sched).toMatchObject({ spec: `${POOL}/snap1`, pool: POOL, namespace: '', image: 'snap1' });
    expect(sched.scheduleTime.getTime()).toBeGreaterThan(t0 - 60_000);
    expect(sched.scheduleTime.getTime()).toBeLessThanOrEqual(t0 + 30 * 60_000 + 60_000);
    expect(sched.scheduleTime.getUTCMinutes() % 30).toBe(0);

    await ra.mirror.removeSnapshotSchedule({ pool: POOL, interval: '1d', startTime: '14:00' });
    expect((await ra.mirror.listSnapshotSchedules({ pool: POOL }))[0].schedules).toEqual([{ interval: '6h', startTime: null }]);
    await ra.mirror.removeSnapshotSchedule({ pool: POOL });
    await ra.mirror.removeSnapshotSchedule({ pool: POOL, image: 'snap1' });
    expect(await ra.mirror.listSnapshotSchedules({ pool: POOL, recursive: true })).toEqual([]);
    await expect(ra.mirror.removeSnapshotSchedule({ pool: POOL, interval: '6h' })).rejects.toMatchObject({ code: 'ENOENT' });
    await expect(ra.mirror.addSnapshotSchedule({ pool: POOL, interval: '6 hours' })).rejects.toThrow(TypeError);
    const np = await ra.mirror.addSnapshotSchedule({ pool: 'no-such-pool-x', interval: '6h' }).catch((e: Error) => e);
    expect(np).toMatchObject({ code: 'EINVAL' });
    expect((np as Error).message).toMatch(/pool no-such-pool-x does not exist/);
  });
});

// --- rbd-stream failback --mirror (the CLI process) ------------------------------------------

const cli = (args: string[]) => runRbdStream(args, 240_000);

/** B (-c) is the site in use, A (--dest-conf) the original. */
const failbackArgs = (...rest: string[]) => ['--json', 'failback', '--mirror', ...clusterArgs(B), ...destArgs(A), '--timeout', '120', ...rest];

/** A snapshot-mirrored image, failed over to B (library failover), then written on B; handles closed. Returns md5 of B. */
async function failedOverAndWritten(name: string): Promise<string> {
  await pa.createImage(name, 8 * MiB);
  const a = await pa.openImage(name);
  await a.mirror.enable('snapshot');
  await writeRandom(a, [0, 5 * MiB], 64 * 1024);
  await a.mirror.createSnapshot();
  const b = await until(`${name} on B`, async () => {
    try {
      return await pb.openImage(name);
    } catch (e) {
      if ((e as { code?: string }).code === 'ENOENT') return undefined;
      throw e;
    }
  });
  await a.mirror.waitForSync({ peer: b, timeoutMs: SYNC_TIMEOUT });
  await failover({ primary: a, secondary: b, timeoutMs: SYNC_TIMEOUT });
  // B was just promoted: its rbd-mirror may still hold the lock (EROFS) for a moment.
  await until(`${name} writable on B`, async () => {
    try {
      await writeRandom(b, [MiB, 6 * MiB], 128 * 1024);
      return true;
    } catch (e) {
      if ((e as { code?: string }).code === 'EROFS') return undefined;
      throw Object.assign(e as Error, { fatal: true });
    }
  }, 60_000);
  await Promise.all([a.close(), b.close()]);
  const want = await md5(B, name);
  expect(await md5(A, name)).not.toBe(want); // A does not have B's writes yet: the failback must bring them
  return want;
}

async function primaries(name: string): Promise<[boolean, boolean]> {
  const [a, b] = await Promise.all([pa.openImage(name), pb.openImage(name)]);
  try {
    return [(await a.mirror.getInfo()).primary, (await b.mirror.getInfo()).primary];
  } finally {
    await Promise.all([a.close(), b.close()]);
  }
}

describe('rbd-stream failback --mirror', () => {
  it('no --writers-stopped, no TTY: refused (exit 4) with nothing demoted; with it: A primary and equal to B; again: ERR_NOT_PRIMARY', async () => {
    const name = 'cli-one';
    const want = await failedOverAndWritten(name);

    const refused = await cli(failbackArgs(`${POOL}/${name}`));
    expect(refused.code).toBe(4);
    expect(JSON.parse(refused.stdout)).toMatchObject({ error: { code: 'ERR_WRITERS_NOT_STOPPED' } });
    expect(await primaries(name)).toEqual([false, true]);

    const r = await cli(failbackArgs(`${POOL}/${name}`, '--writers-stopped'));
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const doc = JSON.parse(r.stdout);
    expect(doc).toMatchObject({
      mode: 'mirror', source: `${POOL}/${name}`, target: `${POOL}/${name}`, writersStopped: 'flag', name, ok: true,
      imageMode: 'snapshot', splitBrain: false, resynced: false, primaryA: true, primaryB: false, current: true,
      replication: { mode: 'snapshot' },
    });
    expect(await primaries(name)).toEqual([true, false]);
    expect(await md5(A, name)).toBe(want);
    expect(await md5(B, name)).toBe(want);

    // B is no longer primary: nothing to fail back, refused before anything.
    const again = await cli(failbackArgs(`${POOL}/${name}`, '--writers-stopped'));
    expect(again.code).toBe(4);
    expect(JSON.parse(again.stdout)).toMatchObject({ error: { code: 'ERR_NOT_PRIMARY' } });
    expect(await primaries(name)).toEqual([true, false]);
  }, 240_000);

  it('text mode: progress lines per step', async () => {
    const name = 'cli-text';
    const want = await failedOverAndWritten(name);
    const r = await cli(failbackArgs(`${POOL}/${name}`, '--writers-stopped').slice(1));
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/step 1\/4: replication .*\n {2}ok +cli-text: mirror snapshot \d+ complete on A/);
    expect(r.stdout).toMatch(/step 2\/4: writers stopped \(--writers-stopped\)/);
    expect(r.stdout).toMatch(/cli-text: demote: demoting/);
    expect(r.stdout).toMatch(/cli-text: promote: promoting/);
    expect(r.stdout).toMatch(new RegExp(`step 4/4: state\n {2}${POOL}/cli-text is primary and current`));
    expect(await md5(A, name)).toBe(want);
  }, 240_000);

  it('on a terminal it asks after step 1: no → refused (exit 4), nothing demoted; yes → A primary', async () => {
    const name = 'cli-tty';
    const want = await failedOverAndWritten(name);
    const args = ['failback', '--mirror', ...clusterArgs(B), ...destArgs(A), '--timeout', '120', `${POOL}/${name}`];
    const no = await onTerminal(args, 'no');
    expect(no.code).toBe(4);
    expect(no.out).toMatch(/ok +cli-tty: mirror snapshot \d+ complete on A/);
    expect(no.out).toMatch(/Stop every writer of .*type 'yes'/);
    expect(no.out).toMatch(/ERR_WRITERS_NOT_STOPPED: .*nothing was demoted or promoted/);
    expect(no.out).not.toMatch(/step 3\/4/);
    expect(await primaries(name)).toEqual([false, true]);
    const yes = await onTerminal(args, 'yes');
    expect(yes.code).toBe(0);
    expect(yes.out).toMatch(/step 2\/4: writers stopped \(confirmed\)/);
    expect(yes.out).toMatch(/is primary and current/);
    expect(await primaries(name)).toEqual([true, false]);
    expect(await md5(A, name)).toBe(want);
  }, 240_000);

  it('--pool --images: per-image JSON, A primary and equal to B for each', async () => {
    const names = ['cli-p1', 'cli-p2'];
    const want: string[] = [];
    for (const n of names) want.push(await failedOverAndWritten(n));
    const r = await cli(failbackArgs('--pool', '--images', `${names.join(',')},cli-nonesuch`, '--writers-stopped', POOL));
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const doc = JSON.parse(r.stdout);
    expect(doc).toMatchObject({ mode: 'mirror', pool: POOL, writersStopped: 'flag', current: true, skipped: [{ name: 'cli-nonesuch' }] });
    expect(doc.images.map((x: { name: string }) => x.name)).toEqual(names);
    for (const x of doc.images) expect(x).toMatchObject({ ok: true, imageMode: 'snapshot', primaryA: true, primaryB: false, current: true, splitBrain: false });
    for (const [i, n] of names.entries()) {
      expect(await primaries(n)).toEqual([true, false]);
      expect(await md5(A, n)).toBe(want[i]);
    }
  }, 300_000);

  it('--pool with one image failing its check: stops after step 1 (exit 3), nothing demoted', async () => {
    const good = 'cli-q1';
    const bad = 'cli-q2';
    await failedOverAndWritten(good);
    // 'cli-q2' is mirrored from B, but A already has an unrelated, unmirrored image of that name.
    await pa.createImage(bad, MiB);
    await pb.createImage(bad, MiB);
    const ib = await pb.openImage(bad);
    await ib.mirror.enable('snapshot');
    await ib.close();
    const r = await cli(failbackArgs('--pool', '--images', 'cli-q*', '--writers-stopped', POOL));
    expect(r.code).toBe(3);
    const doc = JSON.parse(r.stdout);
    expect(doc).toMatchObject({ mode: 'mirror', current: false, writersStopped: null, stopped: expect.stringMatching(/nothing was demoted/) });
    expect(doc.images).toMatchObject([
      { name: good, ok: true, current: false, replication: { mode: 'snapshot' } },
      { name: bad, ok: false, current: false, error: { code: 'EINVAL', message: expect.stringMatching(/mirroring is not enabled/) } },
    ]);
    expect(await primaries(good)).toEqual([false, true]);
  }, 240_000);

  it('usage: --timeout without --mirror, sync-only flags with --mirror (exit 2)', async () => {
    const noMirror = await cli(['--json', 'failback', ...clusterArgs(B), ...destArgs(A), '--timeout', '5', '--writers-stopped', `${POOL}/x`]);
    expect(noMirror.code).toBe(2);
    expect(JSON.parse(noMirror.stdout)).toMatchObject({ error: { code: 'ERR_USAGE' } });
    const verify = await cli(failbackArgs('--verify', '--writers-stopped', `${POOL}/x`));
    expect(verify.code).toBe(2);
    expect(JSON.parse(verify.stdout).error.message).toMatch(/--verify is for snapshot-sync failback/);
    const inflight = await cli(failbackArgs('--inflight', '8M', '--writers-stopped', `${POOL}/x`));
    expect(inflight.code).toBe(2);
    expect(JSON.parse(inflight.stdout).error.message).toMatch(/--inflight is for snapshot-sync failback/);
  });

  it('split-brain: refused without --force (ERR_SPLIT_BRAIN, exit 4, nothing changed); with --force A is resynced from B', async () => {
    const name = 'cli-split';
    await pa.createImage(name, 8 * MiB);
    const a = await pa.openImage(name);
    await a.mirror.enable('snapshot');
    await writeRandom(a, [0], 64 * 1024);
    await a.mirror.createSnapshot();
    const b = await openWhenReplicated(pb, name);
    opened.splice(opened.indexOf(b), 1);
    await a.mirror.waitForSync({ peer: b, timeoutMs: SYNC_TIMEOUT });
    // Site A "fails": B promoted by force while A still believes it is primary.
    await b.mirror.promote({ force: true });
    await writeRandom(a, [4 * MiB], 4096); // A's divergent write, which the resync discards
    await Promise.all([a.close(), b.close()]);
    const wantB = await md5(B, name);
    expect(await md5(A, name)).not.toBe(wantB);
    expect(await primaries(name)).toEqual([true, true]);

    const refused = await cli(failbackArgs(`${POOL}/${name}`, '--writers-stopped'));
    expect(refused.code).toBe(4);
    const err = JSON.parse(refused.stdout).error;
    expect(err.code).toBe('ERR_SPLIT_BRAIN');
    expect(err.message).toMatch(/--force/);
    expect(await primaries(name)).toEqual([true, true]);

    const r = await cli(failbackArgs(`${POOL}/${name}`, '--writers-stopped', '--force', '--timeout', '180'));
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ splitBrain: true, resynced: true, primaryA: true, primaryB: false, current: true });
    expect(await primaries(name)).toEqual([true, false]);
    expect(await md5(A, name)).toBe(wantB);
  }, 300_000);
});

// Last in the file: it replaces each cluster's peer user for a moment (restored after).
describe('peer user key type', () => {
  const PEER = 'client.rbd-mirror-peer';
  const CAPS = ['mon', 'profile rbd-mirror-peer', 'osd', 'profile rbd'];
  const keyTypeOf = (t: string) => {
    const { key } = JSON.parse(Buffer.from(t, 'base64').toString('utf8')) as { key: string };
    return Buffer.from(key, 'base64').readUInt16LE(0);
  };

  it("peerKeyType 'aes' makes the peer user's key AES on every release; an existing AES-256 one is refused (EEXIST) where the mon makes them", async () => {
    for (const [c, r, m] of [[A, ra, ma], [B, rb, mb]] as const) {
      const major = await cephMajor(c, 'mon');
      const saved = (await r.command('mon', { prefix: 'auth export', entity: PEER })).out;
      try {
        // The user made with the mon's strongest key type: AES-256 on Tentacle; earlier mons ignore key_type (AES).
        await r.command('mon', { prefix: 'auth rm', entity: PEER });
        await r.command('mon', { prefix: 'auth get-or-create', entity: PEER, caps: CAPS, key_type: major >= 20 ? 'aes256k' : 'aes' });
        const def = await m.createBootstrapToken();
        expect(keyTypeOf(def)).toBe(major >= 20 ? 2 : 1);
        const e = (await m.createBootstrapToken({ peerKeyType: 'aes' }).then(() => null, (x: Error) => x)) as (Error & { code: string }) | null;
        if (major >= 20) {
          expect(e).toMatchObject({ code: 'EEXIST', errno: -17 });
          expect(e!.message).toMatch(/client\.rbd-mirror-peer already exists with a cephx type 2 \(AES-256\) key/);
          const { key } = JSON.parse(Buffer.from(def, 'base64').toString('utf8')) as { key: string };
          expect(e!.message + JSON.stringify(e)).not.toContain(key);
        } else {
          expect(e).toBeNull();
        }
        // A new peer user made through peerKeyType 'aes' is AES (type 1), which every release can use.
        await r.command('mon', { prefix: 'auth rm', entity: PEER });
        expect(keyTypeOf(await m.createBootstrapToken({ peerKeyType: 'aes' }))).toBe(1);
        expect(keyTypeOf(await m.createBootstrapToken())).toBe(1); // librbd gets the existing user
      } finally {
        await r.command('mon', { prefix: 'auth rm', entity: PEER }).catch(() => {});
        await r.command('mon', { prefix: 'auth import' }, saved);
      }
    }
  });
});
