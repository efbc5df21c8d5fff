/**
 * vitest globalSetup: resolves the two test clusters once per run (existing ones named by
 * RBD_STREAM_CONF_A/B, or two fresh local clusters in a temp dir) and provides them as
 * `inject('clusters')`. Clusters started here are always stopped: by the returned teardown,
 * on SIGINT/SIGTERM/SIGHUP of the runner and on process exit (also while still starting),
 * and — if the runner is SIGKILLed — by a detached watchdog.
 */
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { TestProject } from 'vitest/node';
import { cephCmd, down, downSync, spawnWatchdog, status, tail } from '../../tools/cluster/index.js';
import { exportClusterEnv, resolveClusters } from './clusters.js';
import { describeCluster, type HealthRecord } from './health.js';

/**
 * The clusters' health after each test file (recorded by test/health.ts), printed as changes only;
 * if a cluster ends unhealthy, also its health detail and the tails of its daemon logs. Printed at
 * the very end of the run, where a truncated CI log still shows it.
 */
async function healthReport(dir: string): Promise<string> {
  const out: string[] = [];
  const path = join(dir, 'health.jsonl');
  const recs: HealthRecord[] = existsSync(path)
    ? readFileSync(path, 'utf8').trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as HealthRecord)
    : [];
  const last: Record<string, string> = {};
  const peak: Record<string, { bytes: number; file: string }> = {};
  for (const r of recs) {
    for (const [name, c] of Object.entries(r.clusters)) {
      if (!peak[name] || c.usedBytes > peak[name].bytes) peak[name] = { bytes: c.usedBytes, file: r.file };
      const key = `${c.ok}`;
      if (last[name] !== key) out.push(`  after ${r.file}: ${name} ${c.ok ? 'ok' : 'NOT OK'}: ${c.summary}`);
      last[name] = key;
    }
  }
  for (const [name, p] of Object.entries(peak)) {
    out.push(`  most data held: ${name} ${(p.bytes / 2 ** 20).toFixed(0)} MiB (after ${p.file})`);
  }
  const st = await status(dir);
  for (const [name, c] of Object.entries(st.clusters)) {
    const d = describeCluster(c);
    out.push(`  at the end: ${name} ${d.ok ? 'ok' : 'NOT OK'}: ${d.summary}`);
    if (d.ok) continue;
    const detail = await cephCmd(c.conf, ['health', 'detail'], 15_000).then((r) => r.stdout, (e) => String(e));
    out.push(`  $ ceph health detail (${name})`, detail.trim().split('\n').slice(0, 20).join('\n'));
    for (const f of ['osd.0.log', 'osd.0.out', 'mon.a.log']) {
      const t = tail(join(dir, name, 'log', f), 25);
      if (t) out.push(`  --- ${name}/log/${f} (tail)`, t);
    }
  }
  return `[clusters] health after each test file (changes only):\n${out.join('\n')}\n`;
}

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
    // fastMon: snapshot and pool changes commit in ~0.1 s instead of ~0.9 s (see tools/cluster).
    clusters = await resolveClusters({ mirror: process.env.RBD_STREAM_MIRROR === '1', fastMon: true, log, onDir: arm });
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
  process.env.RBD_STREAM_SET_DIR = dir; // for the health reporter (test/health.ts)
  process.stderr.write(`[clusters] started a, b in ${dir} (${((Date.now() - t0) / 1000).toFixed(1)} s)\n`);

  return async () => {
    disarm();
    if (stopped || !dir) return;
    stopped = true;
    const t1 = Date.now();
    process.stderr.write(await healthReport(dir).catch((e) => `[clusters] health report failed: ${e}\n`));
    await down(dir);
    rmSync(dir, { recursive: true, force: true });
    process.stderr.write(`[clusters] stopped ${dir} (${((Date.now() - t1) / 1000).toFixed(1)} s)\n`);
  };
}
