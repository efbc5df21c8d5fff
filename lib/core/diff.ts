// image.diff(): changed extents, pulled range by range at the consumer's pace.
import { native, type ImageHandle } from '../binding/index.js';

export interface Extent {
  offset: number;
  length: number;
  /** false: the range reads as zeroes now (discarded / never written) and must be zeroed on a copy. */
  exists: boolean;
}

export interface DiffOptions {
  /** Diff against this snapshot; default: everything allocated. */
  fromSnapshot?: string;
  /**
   * Diff against the snapshot with this id instead (exclusive with `fromSnapshot`): reaches
   * mirror (`.mirror.primary.*`), trash and group snapshots, which names cannot. Needs
   * rbd_diff_iterate3 (Reef 18.2.5+, Squid 19.2.3+; see `capabilities()`), else ENOTSUP.
   */
  fromSnapId?: number | bigint;
  offset?: number;
  length?: number;
  /** Report whole objects (uses the fast-diff object map when valid). */
  wholeObject?: boolean;
  /** Include the parent's data for clones (default true, as `rbd diff`). */
  includeParent?: boolean;
  signal?: AbortSignal;
  /** Extents per yielded batch (default 1024). */
  batchSize?: number;
}

export interface DiffPlan {
  handle: () => ImageHandle;
  from: string | bigint | null;
  offset: number;
  end: number;
  /** Range step: a multiple of the striping period, so no extent spans two calls. */
  step: number;
  wholeObject: boolean;
  includeParent: boolean;
  batchSize: number;
  signal?: AbortSignal;
  track: <T>(start: () => Promise<T>) => Promise<T>;
}

export async function* iterateDiff(plan: DiffPlan): AsyncGenerator<Extent[]> {
  const { step, end } = plan;
  const rangeAt = (start: number) => {
    const stop = Math.min(end, (Math.floor(start / step) + 1) * step);
    return { start, stop };
  };
  const fetch = (start: number) => {
    const r = rangeAt(start);
    const p = plan.track(() =>
      native.getDiffExtents(plan.handle(), plan.from, r.start, r.stop - r.start, plan.wholeObject, plan.includeParent),
    );
    p.catch(() => {}); // observed below; avoids an unhandled rejection if we stop early
    return { ...r, p };
  };
  let batch: Extent[] = [];
  // Ranges fetched ahead of the one being consumed: overlaps librbd's work with the consumer's. A
  // whole-object diff costs round trips (object map loads) per call but returns one extent per object
  // at most (64 striping periods), so more calls go at once: on a target 10 ms away the 4 calls of a
  // 1 GiB image took two round trips one range ahead, one round trip all at once.
  const ahead = plan.wholeObject ? 8 : 1;
  const pending: ReturnType<typeof fetch>[] = [];
  let nextStart = plan.offset;
  const refill = (n: number) => {
    while (pending.length < n && nextStart < end) {
      const f = fetch(nextStart);
      pending.push(f);
      nextStart = f.stop;
    }
  };
  refill(1 + ahead);
  while (pending.length > 0) {
    plan.signal?.throwIfAborted();
    const current = pending.shift()!;
    refill(ahead);
    const flat = await current.p;
    plan.signal?.throwIfAborted();
    for (let i = 0; i < flat.length; i += 3) {
      batch.push({ offset: flat[i], length: flat[i + 1], exists: flat[i + 2] === 1 });
      if (batch.length >= plan.batchSize) {
        yield batch;
        batch = [];
        plan.signal?.throwIfAborted();
      }
    }
  }
  if (batch.length > 0) yield batch;
}
