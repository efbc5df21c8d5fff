// The replicate target: opened (or created with the source's layout), held against concurrent
// copies (this process: a map; others: librbd's exclusive lock), and its base snapshot checked
// by recorded identity before anything is written.
import { native } from '../../binding/index.js';
import { codedError } from '../../core/errors.js';
import type { Image, ImageStat } from '../../core/image.js';
import type { CreateImageOptions } from '../../core/pool.js';
import type { SnapshotInfo } from '../../core/snapshot.js';
import { identityFrom, isRecordedCopy, type SnapshotIdentity } from '../identity.js';
import { kHandle, kSendRecords, kTrack } from '../../core/internal.js';
import type { DiscardedChanges, ReplicateTargetSpec } from './options.js';

// Targets with a replicate in this process (other processes: librbd's exclusive lock). A run
// that failed on an unreachable target rejects at once and closes its handles afterwards
// (`closing`); a re-run into that target waits for it rather than being refused.
const busy = new Map<string, { closing?: Promise<void> }>();

/** Opens the target, creating it (size of toSnapshot) for a full copy when `create` allows. */
export async function openTarget(
  targetSpec: ReplicateTargetSpec | undefined, given: Image, source: Image, fromSnap: string | undefined, size: number,
): Promise<{ target: Image; created: boolean }> {
  if (targetSpec) {
    const { pool, name, create } = targetSpec;
    // On a far target each call is a round trip or more. A full copy allowed to create its target
    // usually goes to a new image: create first (librbd checks that the name is free before
    // anything else, so an existing image answers EEXIST as fast as a failed open would answer
    // ENOENT). Otherwise open first: an incremental's target exists on every round.
    if (fromSnap === undefined && create) {
      let created = false;
      try {
        await pool.createImage(name, size, await createLayout(source, create));
        created = true;
      } catch (e) {
        // There already (an earlier copy, or a concurrent replicate): the checks below decide.
        if ((e as { code?: string }).code !== 'EEXIST') throw e;
      }
      return { target: await pool.openImage(name), created };
    }
    const opened = await pool.openImage(name).catch((e: unknown) => {
      if ((e as { code?: string }).code === 'ENOENT') return undefined;
      throw e;
    });
    if (opened) return { target: opened, created: false };
    if (fromSnap !== undefined) {
      throw codedError('ENOENT', `target image '${pool.spec}/${name}' does not exist (incremental copy needs base '${fromSnap}')`, { errno: -2 });
    }
    throw codedError('ENOENT', `target image '${pool.spec}/${name}' does not exist (pass target.create)`, { errno: -2 });
  } else {
    // Our own handle of the caller's image: taking the exclusive lock through the API
    // (rbd_lock_acquire) switches a handle to manual lock management for good, and the
    // caller's Image would fail every write with EROFS after we release the lock.
    given[kHandle]; // ERR_CLOSED if the caller's image is closed
    return { target: await given.pool.openImage(given.name), created: false };
  }
}

/**
 * replicate()'s records on the target (checkpoint, identities): set and removed in one op, without
 * librbd's notify and the refresh it triggers (native updateMetadata). The target's lock is held.
 * With `absent`, applied only if none of those keys is set: resolves false (nothing written) when one is.
 */
export async function updateRecords(target: Image, set: Record<string, string>, remove: string[] = [], absent?: string[]): Promise<boolean> {
  try {
    await target[kTrack](() => native.updateMetadata(target[kHandle], Object.entries(set).flat(), remove, absent));
    return true;
  } catch (e) {
    if (absent !== undefined && (e as { code?: string }).code === 'ECANCELED') return false;
    throw e;
  }
}

/**
 * Creates the target snapshot with `records` set just before it, in the same round trip (sent
 * ahead, applied first by the header's OSD). Resolves to the snapshot's id. The records' failure
 * rejects as soon as their reply says so: on a hung target that is one op timeout, while librbd's
 * create waits out several. A snapshot made without its records is then removed (close() waits).
 */
export async function snapshotWithRecords(
  target: Image, name: string, knownIds: number[], flags: number, records: Record<string, string>,
): Promise<number> {
  const h = target[kHandle];
  const recorded = settled(target[kSendRecords](records, []));
  const created = settled(target[kTrack](() => native.createSnapshot(h, name, knownIds, flags)));
  const rec = await recorded;
  if (!rec.ok) {
    void target[kTrack](async () => {
      const made = await created;
      if (made.ok) await native.removeSnapshot(h, made.value);
    }).catch(() => undefined);
    throw rec.error;
  }
  const made = await created;
  if (!made.ok) throw made.error;
  return made.value;
}

/** Marks the target busy in this process (EBUSY if it is); returns its stat and busy key. */
export async function reserveTarget(target: Image): Promise<{ stat: ImageStat; key: string }> {
  const tst = await target.stat();
  const key = `${await target.pool.rados.fsid()}/${target.pool.id}/${target.pool.namespace}/${tst.id}`;
  for (let entry = busy.get(key); entry; entry = busy.get(key)) {
    if (!entry.closing) throw codedError('EBUSY', `another replicate into '${target.spec}' is in progress`, { errno: -16 });
    await entry.closing;
  }
  busy.set(key, {});
  return { stat: tst, key };
}

/** Takes the target's exclusive lock (EBUSY when another client holds it). */
export async function lockTarget(target: Image, tst: ImageStat): Promise<void> {
  if (tst.features.includes('exclusive-lock')) {
    try {
      await target[kTrack](() => native.acquireLock(target[kHandle]));
    } catch (e) {
      const code = (e as { code?: string }).code;
      if (code === 'EROFS' || code === 'EBUSY') {
        throw codedError('EBUSY', `target '${target.spec}' is locked by another client (replicate in progress?)`, { errno: -16, cause: e });
      }
      throw e;
    }
  }
}

/**
 * Frees the busy mark once `closing` (the handles' close) settles. On an unreachable target each
 * close step waits out the op timeout: then the failure is reported now and a re-run waits.
 */
export async function releaseTarget(busyKey: string | undefined, closed: Promise<unknown>, failure: unknown): Promise<void> {
  const closing = closed.then(() => {
    if (busyKey) busy.delete(busyKey);
  });
  // The connection's close() still waits for these handles.
  if ((failure as { code?: unknown } | undefined)?.code === 'ETIMEDOUT' && busyKey) busy.set(busyKey, { closing });
  else await closing;
}

export type Settled<T> = { ok: true; value: T } | { ok: false; error: unknown };

/** A promise that never rejects (its failure is kept), for a read made ahead that may go unused. */
export function settled<T>(p: Promise<T>): Promise<Settled<T>> {
  return p.then((value) => ({ ok: true as const, value }), (error: unknown) => ({ ok: false as const, error }));
}

export interface TargetChanges {
  /** Some data changed on the target's head since the base (with force: all of it is listed). */
  dataChanged: boolean;
  /** With force: the changed extents, as offset, length pairs. */
  extents: number[];
}

/** The target's own changes since `fromSnap` (the first batch only, unless force needs them all). */
export async function targetChanges(target: Image, fromSnap: string, force: boolean): Promise<TargetChanges> {
  if (!force) {
    // One round trip where the fast-diff object maps can answer; diff_iterate loads them one
    // after another, several round trips on a far target.
    const answer = await target[kTrack](() => native.headChangedSince(target[kHandle], fromSnap));
    if (answer !== 0) return { dataChanged: answer === 2, extents: [] };
  }
  const extents: number[] = [];
  let dataChanged = false;
  // Otherwise whether anything changed is answered per object, from the fast-diff object map where valid
  // (no round trip per object); force needs the exact extents.
  for await (const batch of target.diff({ fromSnapshot: fromSnap, batchSize: force ? 1024 : 1, wholeObject: !force })) {
    if (batch.length > 0) dataChanged = true;
    if (!force && dataChanged) break;
    for (const e of batch) extents.push(e.offset, e.length);
  }
  return { dataChanged, extents };
}

/** At most this many ranges are listed in a discarded-changes report (the count and bytes cover all). */
export const MAX_DISCARDED_RANGES = 1000;

/** What a forced copy overwrote of the target's own changes (`extra`), adjacent ranges merged. */
export function discardedChanges(extra: Float64Array | undefined): DiscardedChanges {
  const ranges: { offset: number; length: number }[] = [];
  let count = 0;
  let bytes = 0;
  let last: { offset: number; length: number } | undefined;
  for (let i = 0; extra && i + 1 < extra.length; i += 2) {
    const offset = extra[i];
    const length = extra[i + 1];
    bytes += length;
    if (last && last.offset + last.length === offset) {
      last.length += length;
      continue;
    }
    count++;
    last = { offset, length };
    if (ranges.length < MAX_DISCARDED_RANGES) ranges.push(last);
  }
  return { ranges, count, bytes, truncated: count > ranges.length };
}

export interface BaseCheck {
  target: Image;
  tst: ImageStat;
  tsnaps: SnapshotInfo[];
  fromSnap: string;
  fromId: SnapshotIdentity;
  force: boolean;
  /** Resuming our own interrupted run of this copy. */
  matching: boolean;
  /**
   * The checkpoint is our own interrupted copy from this same base to another snapshot (one since
   * removed, say): the head's changes since the base are ours, and are copied again.
   */
  ownFromBase: boolean;
  /** The recorded identity of the target's fromSnap (readIdentity). */
  record: SnapshotIdentity | undefined;
  /** targetChanges(target, fromSnap, force), read ahead. */
  changes: Promise<Settled<TargetChanges>>;
  /**
   * The record the SOURCE keeps for its fromSnap (readIdentity(source, fromSnap)), read only when
   * the target holds no valid proof: the reverse proof, after a failback (the source's fromSnap is
   * a recorded copy of the target's). Absent: only the target's record counts (fromSnapId runs).
   */
  sourceRecord?: () => Promise<SnapshotIdentity | undefined>;
}

/**
 * An incremental copy's base: the target's fromSnapshot must be a recorded copy of the source's
 * (or, the reverse proof, the source's fromSnapshot a recorded copy of the target's), and (unless
 * forced, or resuming our own run) the head unchanged since. Returns the target's own changed
 * extents to overwrite as well (force).
 */
export async function checkBase(c: BaseCheck): Promise<Float64Array | undefined> {
  const { target, tst, tsnaps, fromSnap, fromId, force, matching, ownFromBase, record: rec } = c;
  let extra: Float64Array | undefined;
  const base = tsnaps.find((s) => s.name === fromSnap);
  if (!base) {
    throw codedError('ENOENT', `base snapshot '${fromSnap}' not found on target '${target.pool.spec}/${target.name}'`, { errno: -2, snapshot: fromSnap });
  }
  const boundTo = (rec as { targetSnapId?: unknown } | undefined)?.targetSnapId;
  const forward = isRecordedCopy(rec, fromId, base.id);
  // Both images hold equal data at their fromSnapshot either way; the refusals below are unchanged.
  const reverse = !forward && c.sourceRecord !== undefined &&
    isRecordedCopy(await c.sourceRecord(), identityFrom(target, await target.pool.rados.fsid(), tst.id, base), fromId.snapId);
  if (!forward && !reverse && rec && typeof boundTo === 'number' && boundTo !== base.id) {
    throw codedError('ERR_WRONG_BASE', `target snapshot '${fromSnap}' was recreated after it was replicated (id ${base.id}, recorded ${boundTo})`, { snapshot: fromSnap });
  }
  if (!forward && !reverse) {
    throw codedError(
      'ERR_WRONG_BASE',
      rec
        ? `target snapshot '${fromSnap}' is a copy of ${rec.pool}/${rec.image}@${rec.snapName} (image id ${rec.imageId}, snap id ${rec.snapId}, fsid ${rec.fsid}), not of the source's '${fromSnap}'`
        : `target snapshot '${fromSnap}' has no recorded source identity (not created by replicate)`,
      { snapshot: fromSnap },
    );
  }
  // Our own interrupted run changed the head: that is expected, not a foreign change.
  // force: the target's own changes since the base are overwritten with source data too
  // (also on a resumed run: extents past the checkpoint are still to do).
  if (force || !matching) {
    let changed = tst.size !== base.size;
    if (force || !changed) {
      const r = await c.changes;
      if (!r.ok) throw r.error;
      changed ||= r.value.dataChanged;
      if (force && r.value.extents.length > 0) extra = Float64Array.from(r.value.extents);
    }
    if (changed && !force && !matching && ownFromBase) {
      // Every range the interrupted copy may have written is written again from this copy's source.
      extra = Float64Array.from((await targetChanges(target, fromSnap, true)).extents);
    } else if (changed && !force && !matching) {
      throw codedError('ERR_TARGET_CHANGED', `target '${target.pool.spec}/${target.name}' head changed since snapshot '${fromSnap}' (pass force to overwrite)`, { snapshot: fromSnap, image: target.name, pool: target.pool.name });
    }
  }
  return extra;
}

// The source's layout unless the caller chose one: its order, then its striping where that
// divides the object size (`rbd import` of a v2 export keeps both the same way).
async function createLayout(source: Image, create: CreateImageOptions): Promise<CreateImageOptions> {
  const st = await source.stat();
  const layout: CreateImageOptions = { ...create, order: create.order ?? st.order };
  const fancy = st.stripeCount > 1 || st.stripeUnit !== st.objectSize;
  if (fancy && create.stripeUnit === undefined && create.stripeCount === undefined && 2 ** layout.order! % st.stripeUnit === 0) {
    layout.stripeUnit = st.stripeUnit;
    layout.stripeCount = st.stripeCount;
  }
  return layout;
}
