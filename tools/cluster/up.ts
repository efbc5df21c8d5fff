/** Creating a set of clusters: keys, ceph.conf, mkfs, then mon, mgr, OSD (and rbd-mirror) in order. */
import { randomUUID } from 'node:crypto';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { findCephPaths, type CephPaths } from './ceph-paths.js';
import { cephConf, genKey, keyringEntry, writeSecret } from './conf.js';
import { down, isOurDaemon, readPidFile, spawnDaemon, spawnMirror, startMirrorDaemon, type Spawned } from './daemons.js';
import { cephCmd, childEnv, freePorts, noop, rbdCmd, run, tail } from './exec.js';
import { readState, statePath, toSet, writeJsonAtomic } from './state.js';
import { defaultRelease, inRoot, monmapHasCiphers, parseRelease, releaseRoot, type Release } from './release.js';
import { isLive, waitHealthy } from './status.js';
import { DEFAULT_DIR, DEFAULT_NAMES, DEFAULT_OSD_MIB, type ClusterInfo, type ClusterSet, type StateFile, type UpOptions } from './types.js';

interface CreateCtx {
  setDir: string;
  name: string;
  port: number;
  osdBytes: number;
  fastMon: boolean;
  osdOpThreads: number;
  objectstore: 'memstore' | 'bluestore';
  cephPaths: CephPaths;
  monmapCiphers: boolean;
  /** Release and chroot the daemons run from (root '/': the host's Ceph). */
  release?: Release;
  root: string;
  mirror: boolean;
  log: (s: string) => void;
  /** Called whenever a daemon pid is known, so partial sets can be cleaned up. */
  record: (info: ClusterInfo) => void;
}

async function createCluster(ctx: CreateCtx): Promise<ClusterInfo> {
  const { name, port, log } = ctx;
  const cdir = join(ctx.setDir, name);
  rmSync(cdir, { recursive: true, force: true });
  for (const sub of ['run', 'log', 'crash', 'mon.a', 'mgr.x', 'osd.0']) mkdirSync(join(cdir, sub), { recursive: true });

  const fsid = randomUUID();
  const conf = join(cdir, 'ceph.conf');
  const keyring = join(cdir, 'keyring');
  const mirrorKeyring = join(cdir, 'rbd-mirror.keyring');
  writeFileSync(conf, cephConf({
    cdir, name, fsid, port, osdBytes: ctx.osdBytes, fastMon: ctx.fastMon, osdOpThreads: ctx.osdOpThreads, objectstore: ctx.objectstore,
    cephPaths: ctx.cephPaths, monmapCiphers: ctx.monmapCiphers,
  }));

  // Keys: the mon keyring seeds the auth database at mkfs with admin, mgr and rbd-mirror users,
  // which saves a `ceph auth get-or-create` round trip per entity.
  const admin = genKey();
  const monKey = genKey();
  const mgrKey = genKey();
  const osdKey = genKey();
  const mirrorKey = genKey();
  const adminCaps = { mds: 'allow *', mgr: 'allow *', mon: 'allow *', osd: 'allow *' };
  const mgrCaps = { mds: 'allow *', mon: 'allow profile mgr', osd: 'allow *' };
  const mirrorCaps = { mon: 'profile rbd-mirror', osd: 'profile rbd' };
  writeSecret(keyring, keyringEntry('client.admin', admin, adminCaps));
  writeSecret(join(cdir, 'mgr.x', 'keyring'), keyringEntry('mgr.x', mgrKey));
  writeSecret(join(cdir, 'osd.0', 'keyring'), keyringEntry('osd.0', osdKey));
  writeSecret(mirrorKeyring, keyringEntry(`client.rbd-mirror.${name}`, mirrorKey));
  const monKeyring = join(cdir, 'mon.keyring');
  writeSecret(monKeyring,
    keyringEntry('mon.', monKey, { mon: 'allow *' }) +
    keyringEntry('client.admin', admin, adminCaps) +
    keyringEntry('mgr.x', mgrKey, mgrCaps) +
    keyringEntry(`client.rbd-mirror.${name}`, mirrorKey, mirrorCaps));
  const osdUuid = randomUUID();
  const osdSecret = join(cdir, 'osd.0', 'new.json');
  writeSecret(osdSecret, JSON.stringify({ cephx_secret: osdKey }));

  const monmap = join(cdir, 'monmap');
  const env = childEnv(conf);
  // mkfs with the release's own tools (store formats differ between releases).
  const inRelease = (cmd: string, args: string[]) => run(...inRoot(ctx.root, cmd, args, { binds: [{ src: cdir }], cwd: cdir }), { env });
  // Allow AES keys next to aes256k where the monmap restricts ciphers (monmapHasCiphers).
  const ciphers = ctx.monmapCiphers ? ['--auth-allowed-ciphers', 'aes,aes256k'] : [];
  await inRelease('monmaptool', ['--create', '--clobber', '--fsid', fsid, '--addv', 'a', `[v2:127.0.0.1:${port}]`, ...ciphers, monmap]);
  await Promise.all([
    inRelease('ceph-mon', ['--mkfs', '-i', 'a', '-c', conf, '--monmap', monmap, '--keyring', monKeyring]),
    inRelease('ceph-osd', ['--mkfs', '-i', '0', '-c', conf, '--osd-uuid', osdUuid, '--no-mon-config']),
  ]);
  rmSync(monKeyring, { force: true });

  const info: ClusterInfo = {
    name, dir: cdir, conf, keyring, user: 'admin', fsid, monAddr: `v2:127.0.0.1:${port}`, port,
    pids: { mon: 0, mgr: 0, osd: 0 }, mirrorUser: `rbd-mirror.${name}`, mirrorKeyring,
    ...(ctx.release ? { release: ctx.release, root: ctx.root } : {}),
  };
  const t0 = Date.now();
  const mon = spawnDaemon(cdir, conf, 'mon.a', 'ceph-mon', ['-f', '-i', 'a'], ctx.root);
  info.pids.mon = mon.pid;
  ctx.record(info);
  const mgr = spawnDaemon(cdir, conf, 'mgr.x', 'ceph-mgr', ['-f', '-i', 'x'], ctx.root);
  info.pids.mgr = mgr.pid;
  ctx.record(info);

  const checkAlive = (what: string, d: Spawned, logName: string) => {
    const ex = d.exited();
    if (ex) {
      throw new Error(`${name}: ${what} exited (${ex.code ?? ex.signal}) during start-up:\n` +
        `${tail(join(cdir, 'log', `${logName}.out`))}\n${tail(join(cdir, 'log', `${logName}.log`))}`);
    }
  };

  try {
    await cephCmd(conf, ['osd', 'new', osdUuid, '0', '-i', osdSecret]);
  } catch (e) {
    checkAlive('ceph-mon', mon, 'mon.a');
    throw e;
  }
  rmSync(osdSecret, { force: true });
  log(`[${name}] mon up (${Date.now() - t0} ms)`);
  const osd = spawnDaemon(cdir, conf, 'osd.0', 'ceph-osd', ['-f', '-i', '0'], ctx.root);
  info.pids.osd = osd.pid;
  ctx.record(info);

  await cephCmd(conf, ['osd', 'pool', 'create', 'rbd', '8', '8']);
  try {
    await rbdCmd(conf, ['pool', 'init', 'rbd'], 60_000);
  } catch (e) {
    checkAlive('ceph-osd', osd, 'osd.0');
    throw e;
  }
  log(`[${name}] osd up, pool rbd initialised (${Date.now() - t0} ms)`);

  if (ctx.mirror) {
    info.pids.mirror = spawnMirror(info).pid;
    ctx.record(info);
  }

  await waitHealthy(info, 90_000, () => {
    checkAlive('ceph-mon', mon, 'mon.a');
    checkAlive('ceph-mgr', mgr, 'mgr.x');
    checkAlive('ceph-osd', osd, 'osd.0');
  });
  if (ctx.monmapCiphers) await muteInsecureKeyWarnings(conf);
  log(`[${name}] healthy (${Date.now() - t0} ms after mon start)`);

  // Prefer the pids the daemons wrote themselves (identical in foreground mode).
  for (const [k, file] of [['mon', 'mon.a'], ['mgr', 'mgr.x'], ['osd', 'osd.0']] as const) {
    const p = readPidFile(join(cdir, 'run', `${file}.pid`));
    if (p && isOurDaemon(p, conf)) info.pids[k] = p;
  }
  ctx.record(info);
  return info;
}

/**
 * The AUTH_INSECURE_* warnings that come with allowing AES keys (a choice of this tool, so that
 * older clients connect) are muted, sticky, so that the cluster reads HEALTH_OK as on other releases.
 */
async function muteInsecureKeyWarnings(conf: string): Promise<void> {
  const known = ['AUTH_INSECURE_CLIENT_KEY_TYPE', 'AUTH_INSECURE_SERVICE_KEY_TYPE', 'AUTH_INSECURE_ROTATING_SERVICE_KEY_TYPE',
    'AUTH_INSECURE_KEYS_ALLOWED', 'AUTH_INSECURE_KEYS_CREATABLE'];
  const { stdout } = await cephCmd(conf, ['health', 'detail', '--format', 'json']);
  const raised = Object.keys((JSON.parse(stdout) as { checks?: Record<string, unknown> }).checks ?? {});
  for (const code of new Set([...known, ...raised.filter((c) => c.startsWith('AUTH_INSECURE_'))])) {
    await cephCmd(conf, ['health', 'mute', code, '--sticky']);
  }
}

/**
 * Starts a set of independent clusters (in parallel) in `dir`, or returns the running set
 * if `dir` already holds a live one. A stale set (dead daemons) is cleaned and recreated.
 */
export async function up(opts: UpOptions = {}): Promise<ClusterSet> {
  const dir = resolve(opts.dir ?? DEFAULT_DIR);
  const names = opts.names ?? DEFAULT_NAMES;
  const log = opts.log ?? noop;
  for (const n of names) {
    if (!/^[a-z0-9][a-z0-9_-]*$/i.test(n)) throw new Error(`invalid cluster name ${JSON.stringify(n)}`);
  }
  if (new Set(names).size !== names.length) throw new Error('duplicate cluster names');
  const osdBytes = Math.round((opts.osdMiB ?? DEFAULT_OSD_MIB) * 1024 * 1024);
  const threads = opts.osdOpThreads ?? 1;
  if (!Number.isInteger(threads) || threads < 1 || threads > 32) throw new RangeError(`osdOpThreads must be an integer 1..32, got ${threads}`);
  const objectstore = opts.objectstore ?? 'memstore';
  const baseRelease = opts.release === undefined ? defaultRelease() : parseRelease(opts.release);
  for (const n of Object.keys(opts.releases ?? {})) if (!names.includes(n)) throw new Error(`releases: no cluster named ${JSON.stringify(n)} in ${names.join(',')}`);
  const releaseOf = (n: string): Release | undefined => (opts.releases?.[n] === undefined ? baseRelease : parseRelease(opts.releases[n]));
  if (objectstore !== 'memstore' && objectstore !== 'bluestore') throw new RangeError(`objectstore must be 'memstore' or 'bluestore', got ${String(objectstore)}`);

  const existing = readState(dir);
  if (existing) {
    const sameNames = Object.keys(existing.clusters).sort().join(',') === [...names].sort().join(',') &&
      Object.values(existing.clusters).every((c) => c.release === releaseOf(c.name));
    if (sameNames && await isLive(existing)) {
      log(`cluster set in ${dir} is already running`);
      if (opts.mirror) {
        for (const n of names) if (!isOurDaemon(existing.clusters[n].pids.mirror, existing.clusters[n].conf)) {
          await startMirrorDaemon(dir, n);
        }
        return toSet(readState(dir)!);
      }
      return toSet(existing);
    }
    log(`cleaning ${sameNames ? 'stale' : 'different'} cluster set in ${dir}`);
    await down(dir);
  }

  // Before anything is created: a Ceph without its plugins fails here, with the paths tried.
  // Per release (clusters of a set may differ): its root, plugin paths and monmap cipher option.
  const perRelease = new Map<Release | undefined, { root: string; cephPaths: CephPaths; monmapCiphers: boolean }>();
  for (const n of names) {
    const release = releaseOf(n);
    if (perRelease.has(release)) continue;
    const root = release ? releaseRoot(release) : '/';
    perRelease.set(release, { root, cephPaths: findCephPaths(root), monmapCiphers: monmapHasCiphers(root) });
    if (release) log(`release ${release}: daemons from the chroot ${root}`);
  }
  mkdirSync(dir, { recursive: true });
  const state: StateFile = {
    version: 1, createdAt: new Date().toISOString(), createdBy: process.pid, dir, clusters: {},
  };
  const save = () => writeJsonAtomic(statePath(dir), state);
  save();

  const t0 = Date.now();
  const ports = opts.basePort ? names.map((_, i) => opts.basePort! + i) : await freePorts(names.length);
  try {
    await Promise.all(names.map((name, i) => createCluster({
      setDir: dir, name, port: ports[i], osdBytes, fastMon: !!opts.fastMon, osdOpThreads: threads, objectstore,
      ...perRelease.get(releaseOf(name))!, release: releaseOf(name), mirror: !!opts.mirror, log,
      record: (info) => { state.clusters[name] = { ...info, pids: { ...info.pids } }; save(); },
    })));
  } catch (e) {
    log(`start-up failed, stopping what was started: ${(e as Error).message.split('\n')[0]}`);
    await down(dir).catch(noop);
    throw e;
  }
  log(`${names.length} cluster(s) up in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  return toSet(state);
}
