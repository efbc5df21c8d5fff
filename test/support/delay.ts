/**
 * A "far" view of a test cluster: a copy of its ceph.conf whose [client] section makes the
 * messenger delay every message a client receives from an OSD by U(0, 2×mean) seconds
 * (`ms_inject_delay_type = osd`, `ms_inject_delay_max`, `ms_inject_delay_probability = 1`).
 * Mon traffic is untouched. Give the returned conf to Rados.connect and to the rbd CLI alike.
 */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestCluster } from './clusters.js';

/** The conf text with the injection options at the top of its [client] section (added if missing). */
export function delayedConfText(text: string, meanMs: number): string {
  if (!(meanMs > 0) || !Number.isFinite(meanMs)) throw new RangeError(`meanMs must be > 0 (got ${meanMs})`);
  const maxSecs = (2 * meanMs) / 1000;
  const inject = [
    'ms_inject_delay_type = osd',
    `ms_inject_delay_max = ${maxSecs}`,
    'ms_inject_delay_probability = 1',
  ];
  const lines = text.split('\n');
  // A same-named option later in the section would win: drop any earlier ms_inject_* lines.
  const kept = lines.filter((l) => !/^\s*ms[ _]inject[ _]delay/.test(l));
  const at = kept.findIndex((l) => /^\s*\[\s*client\s*\]\s*$/.test(l));
  if (at < 0) return `${kept.join('\n').replace(/\n*$/, '\n')}\n[client]\n${inject.join('\n')}\n`;
  kept.splice(at + 1, 0, ...inject);
  return kept.join('\n');
}

/**
 * Writes a delayed copy of `c.conf` (mean delay `meanMs` ms) into a new temp dir; returns its path.
 * Relative paths in the conf stay valid only if they were absolute (tools/cluster writes absolute ones).
 */
export function writeDelayedConf(c: Pick<TestCluster, 'conf' | 'name'>, meanMs: number, dir?: string): string {
  const out = dir ?? mkdtempSync(join(tmpdir(), `rbd-stream-delay-${c.name}-`));
  const path = join(out, `delay${meanMs}.conf`);
  writeFileSync(path, delayedConfText(readFileSync(c.conf, 'utf8'), meanMs));
  return path;
}

/** The same cluster seen through a delayed conf (for rbdCli / rbdExportMd5 / connectTo). */
export function delayedCluster<T extends TestCluster>(c: T, meanMs: number, dir?: string): T & { delayedConf: string } {
  const conf = writeDelayedConf(c, meanMs, dir);
  return { ...c, conf, delayedConf: conf };
}
