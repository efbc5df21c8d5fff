// The resume checkpoint: image metadata on the target saying which copy is under way and how
// far it got. The native copy engine rewrites it as it goes (checkpointPrefix + doneOffset).
import type { SnapshotIdentity } from '../identity.js';

export const CHECKPOINT_KEY = 'rbd-stream.checkpoint';

export interface Checkpoint {
  from: SnapshotIdentity | null;
  to: SnapshotIdentity;
  /** Target was created by the copy (untouched areas are known zero). */
  fresh: boolean;
  doneOffset: number;
  /**
   * The copy found a source snapshot removed under it (its reads returned zeros): the next copy from
   * the same base redoes its writes instead of refusing them as the target's own changes.
   */
  toRemoved?: true;
}

export function parseCheckpoint(raw: string | undefined): Checkpoint | undefined {
  if (raw === undefined) return undefined;
  try {
    const c = JSON.parse(raw) as Checkpoint;
    if (c && typeof c.doneOffset === 'number' && c.to && typeof c.fresh === 'boolean') return c;
  } catch {
    // a corrupt checkpoint is ignored: the copy is redone from the start
  }
  return undefined;
}

/** The checkpoint's JSON up to its doneOffset value, which the engine appends (then '}'). */
export function checkpointPrefix(from: SnapshotIdentity | null, to: SnapshotIdentity, fresh: boolean): string {
  return JSON.stringify({ from, to, fresh }).slice(0, -1) + ',"doneOffset":';
}
