/**
 * vitest globalSetup: resolves the two test clusters once per run (existing ones named by
 * RBD_STREAM_CONF_A/B, or two fresh local clusters in a temp dir) and provides them as
 * `inject('clusters')`. Clusters started here are always stopped: by the returned teardown,
 * on SIGINT/SIGTERM/SIGHUP of the runner and on process exit (also while still starting),
 * and — if the runner is SIGKILLed — by a detached watchdog.
 */
import { rmSync } from 'node:fs';
import type { TestProject } from 'vitest/node';
import { down, downSync, spawnWatchdog } from '../scripts/cluster.js';
import { exportClusterEnv, resolveClusters } from './clusters.js';

const SIGNALS: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];

export default async function setup({ provide }: Pick<TestProject, 'provide'>) {
  const t0 = Date.now();
  const log = (s: string) => { if (process.env.RBD_STREAM_CLUSTER_LOG) process.stderr.write(`[clusters] ${s}\n`); };

  let dir: string | undefined;
  let stopped = false;
  const onExit = () => {
    if (stopped || !dir) return;
    stopped = true;
    downSync(dir);
    rmSync(dir, { recursive: true, force: true });
  };
  const onSignal = (sig: NodeJS.Signals) => {
    onExit();
    disarm();
    // Let the runner's own handlers run; otherwise die of the signal as usual.
    if (process.listenerCount(sig) === 0) process.kill(process.pid, sig);
  };
  const disarm = () => {
    for (const s of SIGNALS) process.off(s, onSignal);
    process.off('exit', onExit);
  };
  const arm = (d: string) => {
    dir = d;
    spawnWatchdog(d, process.pid);
    for (const s of SIGNALS) process.on(s, onSignal);
    process.on('exit', onExit);
  };

  let clusters;
  try {
    clusters = await resolveClusters({ mirror: process.env.RBD_STREAM_MIRROR === '1', log, onDir: arm });
  } catch (e) {
    onExit();
    disarm();
    throw e;
  }
  exportClusterEnv(clusters);
  provide('clusters', clusters);

  if (!clusters.started || !dir) {
    process.stderr.write('[clusters] using existing clusters: ' +
      `${[clusters.a, clusters.b].filter(Boolean).map((c) => c!.conf).join(', ')}\n`);
    return async () => {};
  }
  process.stderr.write(`[clusters] started a, b in ${dir} (${((Date.now() - t0) / 1000).toFixed(1)} s)\n`);

  return async () => {
    disarm();
    if (stopped || !dir) return;
    stopped = true;
    const t1 = Date.now();
    await down(dir);
    rmSync(dir, { recursive: true, force: true });
    process.stderr.write(`[clusters] stopped ${dir} (${((Date.now() - t1) / 1000).toFixed(1)} s)\n`);
  };
}
