// native/diff.cc
import type { ImageHandle } from './handles.js';

export interface DiffBinding {
  /** Changed extents in [offset, offset+length) as (offset, length, exists) triples, sorted. */
  getDiffExtents(
    i: ImageHandle,
    fromSnap: string | null,
    offset: number,
    length: number,
    wholeObject: boolean,
    includeParent: boolean,
  ): Promise<Float64Array>;
}

export const diffFunctions: Record<keyof DiffBinding, true> = { getDiffExtents: true };
