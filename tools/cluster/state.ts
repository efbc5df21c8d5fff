/** `<set dir>/state.json`: the record of a set's clusters and daemon pids. */
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ClusterSet, StateFile } from './types.js';

export function writeJsonAtomic(path: string, data: unknown) {
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, JSON.stringify(data, null, 2) + '\n');
  renameSync(tmp, path);
}

export function statePath(dir: string) {
  return join(dir, 'state.json');
}

export function readState(dir: string): StateFile | undefined {
  try {
    return JSON.parse(readFileSync(statePath(dir), 'utf8')) as StateFile;
  } catch {
    return undefined;
  }
}

export function toSet(s: StateFile): ClusterSet {
  return { dir: s.dir, clusters: s.clusters };
}
