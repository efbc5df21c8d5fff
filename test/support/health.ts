/**
 * vitest reporter: after each test file, records the health of the suite's clusters (when the
 * suite started them; test/global-setup.ts names their set dir in RBD_STREAM_SET_DIR) in
 * <set dir>/health.jsonl. The global teardown prints that timeline, so a
 * file that leaves a cluster broken (dead daemon, full OSD, inactive PGs) is named in the output
 * even when only its tail is kept; a problem is also reported on stderr right away.
 */
import { appendFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import type { Reporter, TestModule } from 'vitest/node';
import { status, type ClusterStatus } from '../../tools/cluster/index.js';

export interface HealthRecord {
  file: string;
  at: string;
  clusters: Record<string, { ok: boolean; summary: string; usedBytes: number }>;
}

/** One line per cluster: health, checks, PGs, data held, dead daemons. */
export function describeCluster(c: ClusterStatus): { ok: boolean; summary: string; usedBytes: number } {
  const dead = Object.entries(c.daemons).filter(([, d]) => !d.alive).map(([k]) => k);
  if (!c.reachable) return { ok: false, usedBytes: 0, summary: `unreachable (${c.error ?? '?'})${dead.length ? `; dead: ${dead.join(',')}` : ''}` };
  const ok = c.health === 'HEALTH_OK' && dead.length === 0 && c.pgs === c.pgsActive && c.osdsUp === c.numOsds;
  const checks = c.healthChecks?.length ? ` [${c.healthChecks.join(',')}]` : '';
  const used = ((c.usedBytes ?? 0) / 2 ** 20).toFixed(0);
  return {
    ok,
    usedBytes: c.usedBytes ?? 0,
    summary: `${c.health}${checks} osds up ${c.osdsUp}/${c.numOsds} pgs active ${c.pgsActive}/${c.pgs} ` +
      `used ${used} MiB objects ${c.objects}${dead.length ? `; dead: ${dead.join(',')}` : ''}`,
  };
}

export default class HealthReporter implements Reporter {
  async onTestModuleEnd(m: TestModule): Promise<void> {
    const dir = process.env.RBD_STREAM_SET_DIR;
    if (!dir) return;
    const file = basename(m.moduleId);
    try {
      const st = await status(dir);
      const rec: HealthRecord = { file, at: new Date().toISOString(), clusters: {} };
      for (const [name, c] of Object.entries(st.clusters)) rec.clusters[name] = describeCluster(c);
      appendFileSync(join(dir, 'health.jsonl'), `${JSON.stringify(rec)}\n`);
      for (const [name, c] of Object.entries(rec.clusters)) {
        if (!c.ok) process.stderr.write(`[health] after ${file}: cluster ${name}: ${c.summary}\n`);
      }
    } catch (e) {
      // Diagnostics only: never fail the run over them.
      process.stderr.write(`[health] after ${file}: check failed: ${(e as Error).message}\n`);
    }
  }
}
