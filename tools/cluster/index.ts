/**
 * vstart-like local Ceph clusters for rbd-stream development and tests (no containers).
 *
 * Each cluster is fully independent (own fsid, own directory, own mon port) and consists of
 * one mon (id a), one mgr (id x), one memstore OSD (id 0) and optionally one rbd-mirror daemon.
 * Daemons run in foreground mode (`-f`) as detached children, so the recorded pid is the
 * daemon itself; `down` stops exactly those pids (verified through /proc/<pid>/cmdline).
 *
 * Library:  import { up, down, status } from './tools/cluster/index.js'
 * CLI:      npm run cluster -- up|down|status ... (cli.ts)
 *
 * conf.ts     ceph.conf and keyrings          up.ts      creating a set (mkfs, daemons in order)
 * daemons.ts  start/stop of recorded daemons   status.ts  health of a cluster and of a set
 * faults.ts   signalDaemon, restartOsd          state.ts   <set dir>/state.json
 * exec.ts     ceph/rbd CLI with timeouts        types.ts   shared types and defaults
 * watchdog.ts starts watchdog.mjs, which tears a set down if its owner dies
 * ceph-paths.ts  absolute plugin paths of the installed Ceph (osd class dir, …) for ceph.conf
 * release.ts  other Ceph releases: daemons from a Debian chroot (`up({ release: 'reef' })`)
 *
 * Only Node built-ins are used. Secrets (keys) are written to files with mode 0600, never printed.
 */
export { findCephPaths, type CephPaths } from './ceph-paths.js';
export { envExports } from './conf.js';
export { down, downSync, isOurDaemon, startMirrorDaemon, stopMirrorDaemon } from './daemons.js';
export { cephCmd, freePorts, rbdCmd, run, tail } from './exec.js';
export { restartOsd, signalDaemon, stopDaemon } from './faults.js';
export { defaultRelease, inRoot, parseRelease, releaseRoot, RELEASES, type Bind, type Release } from './release.js';
export { status, waitHealthy } from './status.js';
export { up } from './up.js';
export { spawnWatchdog } from './watchdog.js';
export {
  DEFAULT_DIR, DEFAULT_NAMES, DEFAULT_OSD_MIB,
  type ClusterInfo, type ClusterPids, type ClusterSet, type ClusterStatus, type DaemonStatus, type SetStatus, type UpOptions,
} from './types.js';
