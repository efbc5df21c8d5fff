/** Types and defaults shared by the cluster tool's modules (see index.ts for the overview). */
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Release } from './release.js';

export interface ClusterPids {
  mon: number;
  mgr: number;
  osd: number;
  mirror?: number;
}

export interface ClusterInfo {
  name: string;
  /** This cluster's directory (`<set dir>/<name>`). */
  dir: string;
  /** Absolute path of ceph.conf; `rbd -c <conf> ...` works with it alone (it names the keyring). */
  conf: string;
  /** Absolute path of the client.admin keyring. */
  keyring: string;
  user: 'admin';
  fsid: string;
  /** Monitor address, e.g. `v2:127.0.0.1:40123`. */
  monAddr: string;
  port: number;
  pids: ClusterPids;
  /** rbd-mirror user of this cluster (`rbd-mirror.<name>`) and its keyring. */
  mirrorUser: string;
  mirrorKeyring: string;
  /** The Ceph release its daemons run from (release.ts); absent: the host's. */
  release?: Release;
  /** That release's chroot ('/' or absent: the host). */
  root?: string;
}

export interface ClusterSet {
  dir: string;
  clusters: Record<string, ClusterInfo>;
}

export interface UpOptions {
  /** Directory holding the set; default `<repo>/.clusters`. */
  dir?: string;
  /** Cluster names; default ['a', 'b']. */
  names?: string[];
  /** OSD capacity in MiB (memstore: RAM, allocated as written; bluestore: a sparse file); default DEFAULT_OSD_MIB. */
  osdMiB?: number;
  /**
   * 'memstore' (default: fast, in RAM, but a restarted OSD comes back empty) or 'bluestore' on a
   * sparse file in the cluster directory (survives an OSD kill and restart: for fault tests).
   */
  objectstore?: 'memstore' | 'bluestore';
  /**
   * Let the mon commit changes after 50 ms instead of Ceph's 1 s propose interval: snapshot
   * create/remove and pool changes then take ~0.1 s instead of ~0.9 s. For test suites; off by
   * default, so benchmarks see Ceph's own timing.
   */
  fastMon?: boolean;
  /**
   * OSD op threads; default 1. More is only safe for workloads that trim no snapshots (see the
   * memstore race noted in cephConf); the I/O benchmark uses 4.
   */
  osdOpThreads?: number;
  /** Also start one rbd-mirror daemon per cluster. */
  mirror?: boolean;
  /** Mon ports basePort, basePort+1, ...; default: free ports picked automatically. */
  basePort?: number;
  /**
   * Run the daemons of this Ceph release, from its chroot (scripts/release-chroot.mjs builds it on
   * first use); 'host' = the host's own Ceph. Default: RBD_STREAM_RELEASE, else the host's.
   */
  release?: Release | 'host';
  /**
   * Per-cluster releases, by cluster name, over `release` (e.g. { a: 'host', b: 'reef' }: a
   * Pacific/Reef pair for cross-version replication and mirroring).
   */
  releases?: Record<string, Release | 'host'>;
  log?: (s: string) => void;
}

export interface DaemonStatus {
  pid: number | undefined;
  alive: boolean;
}

export interface ClusterStatus {
  name: string;
  conf: string;
  fsid: string;
  monAddr: string;
  reachable: boolean;
  health?: string;
  healthChecks?: string[];
  osdsUp?: number;
  osdsIn?: number;
  numOsds?: number;
  pgs?: number;
  pgsActive?: number;
  mgrAvailable?: boolean;
  /** Raw bytes stored (memstore: RAM held by object data). */
  usedBytes?: number;
  objects?: number;
  daemons: Record<string, DaemonStatus>;
  error?: string;
}

export interface SetStatus {
  dir: string;
  exists: boolean;
  clusters: Record<string, ClusterStatus>;
}

export interface StateFile extends ClusterSet {
  version: 1;
  createdAt: string;
  createdBy: number;
}

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const DEFAULT_DIR = join(REPO, '.clusters');
export const DEFAULT_NAMES = ['a', 'b'];
// Memstore holds data in RAM only as it is written: a roomy capacity costs nothing until used, and a
// full OSD blocks writes (a clean-clone run once filled cluster b near the end of the suite at 3 GiB).
export const DEFAULT_OSD_MIB = 8192;
