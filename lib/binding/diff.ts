// native/diff.cc
import type { ImageHandle } from './handles.js';

export interface DiffBinding {
  /** Changed extents in [offset, offset+length) as (offset, length, exists) triples, sorted. */
  getDiffExtents(
    i: ImageHandle,
    /** A name (diff_iterate2), an id (diff_iterate3, resolved at run time: EOPNOTSUPP without it) or null. */
    fromSnap: string | bigint | null,
    offset: number,
    length: number,
    wholeObject: boolean,
    includeParent: boolean,
  ): Promise<Float64Array>;
  /** What the running librbd offers beyond Pacific's C API (dlsym; no librbd call). */
  getCapabilities(): { cephVersion: string | null; diffIterate3: boolean };
  /**
   * native/object_map.cc: whether the head changed since snapshot `snap`, from the fast-diff object
   * maps read in one round trip: 1 unchanged, 2 changed, 0 unknown (ask diff_iterate).
   */
  headChangedSince(i: ImageHandle, snap: string): Promise<0 | 1 | 2>;
}

export const diffFunctions: Record<keyof DiffBinding, true> = { getDiffExtents: true, getCapabilities: true, headChangedSince: true };
