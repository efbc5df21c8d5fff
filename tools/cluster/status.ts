/** Cluster health from `ceph status`: waiting for a new cluster, and the status of a whole set. */
import { resolve } from 'node:path';
import { cephCmd, noop, sleep } from './exec.js';
import { isOurDaemon, daemonPids } from './daemons.js';
import { readState } from './state.js';
import { DEFAULT_DIR, type ClusterInfo, type ClusterStatus, type DaemonStatus, type SetStatus, type StateFile } from './types.js';

interface CephStatusJson {
  fsid?: string;
  health?: { status?: string; checks?: Record<string, unknown> };
  osdmap?: { num_osds?: number; num_up_osds?: number; num_in_osds?: number; osdmap?: CephStatusJson['osdmap'] };
  pgmap?: { num_pgs?: number; pgs_by_state?: { state_name: string; count: number }[]; bytes_used?: number; num_objects?: number };
  mgrmap?: { available?: boolean };
}

async function cephStatus(conf: string, timeoutMs = 15_000): Promise<CephStatusJson> {
  const { stdout } = await cephCmd(conf, ['status', '--format', 'json'], timeoutMs);
  return JSON.parse(stdout) as CephStatusJson;
}

function summarize(s: CephStatusJson) {
  const om = s.osdmap?.osdmap ?? s.osdmap ?? {};
  const pgs = s.pgmap?.num_pgs ?? 0;
  const pgsActive = (s.pgmap?.pgs_by_state ?? [])
    .filter((x) => x.state_name.split('+').includes('active'))
    .reduce((a, x) => a + x.count, 0);
  return {
    health: s.health?.status,
    healthChecks: Object.keys(s.health?.checks ?? {}),
    numOsds: om.num_osds ?? 0,
    osdsUp: om.num_up_osds ?? 0,
    osdsIn: om.num_in_osds ?? 0,
    pgs,
    pgsActive,
    mgrAvailable: s.mgrmap?.available ?? false,
    usedBytes: s.pgmap?.bytes_used ?? 0,
    objects: s.pgmap?.num_objects ?? 0,
  };
}

/** Polls `ceph status` until the OSD is up+in, the mgr is available and all PGs are active. */
export async function waitHealthy(info: Pick<ClusterInfo, 'name' | 'conf'>, timeoutMs = 90_000,
  check: () => void = noop): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  for (;;) {
    check();
    try {
      const s = summarize(await cephStatus(info.conf, 15_000));
      last = JSON.stringify(s);
      if (s.osdsUp >= 1 && s.osdsIn >= 1 && s.mgrAvailable && s.pgs > 0 && s.pgsActive === s.pgs) return;
    } catch (e) {
      last = (e as Error).message;
    }
    if (Date.now() > deadline) throw new Error(`${info.name}: cluster not healthy after ${timeoutMs} ms: ${last}`);
    await sleep(400);
  }
}

export async function isLive(s: StateFile): Promise<boolean> {
  const infos = Object.values(s.clusters);
  if (infos.length === 0) return false;
  for (const c of infos) {
    if (!(['mon', 'mgr', 'osd'] as const).every((k) => isOurDaemon(c.pids[k], c.conf))) return false;
  }
  try {
    await Promise.all(infos.map((c) => cephCmd(c.conf, ['health'], 15_000)));
    return true;
  } catch {
    return false;
  }
}

/** Health and daemon liveness of each cluster of the set in `dir`. Never prints or returns keys. */
export async function status(dir: string = DEFAULT_DIR): Promise<SetStatus> {
  dir = resolve(dir);
  const s = readState(dir);
  if (!s) return { dir, exists: false, clusters: {} };
  const entries = await Promise.all(Object.values(s.clusters).map(async (c): Promise<ClusterStatus> => {
    const daemons: Record<string, DaemonStatus> = {};
    for (const [k, p] of daemonPids(c)) {
      if (k === 'mirror' && !p) continue;
      daemons[k] = { pid: p, alive: isOurDaemon(p, c.conf) };
    }
    const base = { name: c.name, conf: c.conf, fsid: c.fsid, monAddr: c.monAddr, daemons };
    if (!daemons.mon.alive) return { ...base, reachable: false, error: 'mon not running' };
    try {
      return { ...base, reachable: true, ...summarize(await cephStatus(c.conf, 15_000)) };
    } catch (e) {
      return { ...base, reachable: false, error: (e as Error).message.split('\n').slice(0, 3).join(' ') };
    }
  }));
  return { dir, exists: true, clusters: Object.fromEntries(entries.map((e) => [e.name, e])) };
}
