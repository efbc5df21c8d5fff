// syncFailover: site A is lost; make B's snapshot-sync copies usable, each at its newest completed round.
//
// A round that died mid-copy leaves B's head partly newer than its newest sync snapshot, and its
// checkpoint: a later A → B round would resume that copy and skip the check that B was not written,
// overwriting whatever B's workloads wrote by then. So for each image: roll the head back to the newest
// sync snapshot that holds a completed copy when the head differs from it, and remove the checkpoint.
// From then on B's own writes make a forward round refuse (ERR_TARGET_CHANGED) instead. (So does the
// rollback itself: librbd's rollback rewrites the objects, which a diff shows as changed. After a
// failover the way back is a failback, B → A.) A re-run leaves an image it already failed over alone.
//
// Refusals (per image): EBUSY while a client holds the image's exclusive lock (workloads already
// started: a rollback would discard their writes); ERR_TARGET_CHANGED when the head was written since
// that snapshot and no interrupted round explains it (force rolls back anyway); ERR_NO_COMMON_SNAPSHOT
// when the image has no completed sync snapshot.
import picomatch from 'picomatch';
import { codedError } from '../core/errors.js';
import { Pool } from '../core/pool.js';
import type { Image } from '../core/image.js';
import { checkBool, checkImageName, checkName, checkOptions, checkSignal, describe } from '../core/validate.js';
import { readIdentity } from './identity.js';
import { CHECKPOINT_KEY } from './replicate/checkpoint.js';
import { updateRecords } from './replicate/target.js';
import { DEFAULT_PREFIX, prefixed } from './sync.js';

/** Image metadata: the snapshot a failover put the image at, and when. */
export const FAILOVER_KEY = 'rbd-stream.failover';

export interface SyncFailoverOptions {
  /** B's pool holding the copies. */
  pool: Pool;
  /** A glob ('db-*') or a list of image names; default: every image in the pool. */
  images?: string | string[];
  /** The sync prefix (default 'rbd-sync-'). */
  prefix?: string;
  /** Roll back a head written since its newest sync snapshot, and ignore lock owners. */
  force?: boolean;
  signal?: AbortSignal;
}

export type SyncFailoverImageResult =
  | {
      ok: true;
      name: string;
      /** The sync snapshot the image now stands at. */
      snapshot: string;
      /** The head differed from it and was rolled back. */
      rolledBack: boolean;
      /** An interrupted round's checkpoint was removed. */
      checkpointRemoved: boolean;
      /**
       * An earlier failover already put the image at this snapshot (when, ISO 8601): it is left as it
       * is, since its workloads may have written since (a rollback shows as a change too).
       */
      failedOverAt?: string;
    }
  | { ok: false; name: string; error: { code: string; message: string } };

export interface SyncFailoverResult {
  images: SyncFailoverImageResult[];
  summary: { total: number; ok: number; failed: number; rolledBack: number };
}

/** For each image of B's pool (or those named): rolled back to its newest completed sync round, checkpoint removed. */
export async function syncFailover(options: SyncFailoverOptions): Promise<SyncFailoverResult> {
  const o = checkOptions<SyncFailoverOptions>(options, 'syncFailover options', ['pool', 'images', 'prefix', 'force', 'signal']);
  if (!(o.pool instanceof Pool)) throw new TypeError(`pool must be a Pool, got ${describe(o.pool)}`);
  const prefix = o.prefix === undefined ? DEFAULT_PREFIX : checkName(o.prefix, 'prefix', { forbid: '/@' });
  const force = checkBool(o.force, 'force') ?? false;
  const signal = checkSignal(o.signal);
  let names: string[];
  if (Array.isArray(o.images)) names = o.images.map((n, i) => checkImageName(n, `images[${i}]`));
  else if (o.images === undefined || typeof o.images === 'string') {
    const all = await o.pool.listImages();
    const match = o.images === undefined ? undefined : picomatch(o.images);
    names = match ? all.filter((n) => match(n)) : all;
  } else throw new TypeError(`images must be a glob or a list of names, got ${describe(o.images)}`);
  const images: SyncFailoverImageResult[] = [];
  for (const name of names) {
    signal?.throwIfAborted();
    try {
      const image = await o.pool.openImage(name);
      try {
        images.push({ ok: true, name, ...(await failoverImage(image, prefix, force)) });
      } finally {
        await image.close();
      }
    } catch (e) {
      const err = e as { code?: string; message?: string };
      images.push({ ok: false, name, error: { code: err.code ?? 'ERR_UNKNOWN', message: err.message ?? String(e) } });
    }
  }
  const ok = images.filter((x) => x.ok);
  return {
    images,
    summary: { total: images.length, ok: ok.length, failed: images.length - ok.length, rolledBack: ok.filter((x) => x.ok && x.rolledBack).length },
  };
}

async function failoverImage(image: Image, prefix: string, force: boolean) {
  const where = `${image.pool.spec}/${image.name}`;
  if (!force) {
    const owners = await image.getLockOwners().catch((e: { code?: string }) => {
      if (e.code === 'EINVAL') return undefined; // no exclusive-lock feature: nobody can hold it
      throw e;
    });
    if (owners) {
      throw codedError('EBUSY', `'${where}' is in use: client ${owners.owners.join(', ')} holds its exclusive lock (a rollback would discard its writes; stop it, or pass force)`, {
        errno: -16, image: image.name, pool: image.pool.name,
      });
    }
  }
  // The newest sync snapshot holding a completed copy (its identity record is bound then).
  let snapshot: string | undefined;
  for (const s of (await prefixed(image, prefix)).reverse()) {
    if (await readIdentity(image, s.name)) {
      snapshot = s.name;
      break;
    }
  }
  if (snapshot === undefined) {
    throw codedError('ERR_NO_COMMON_SNAPSHOT', `'${where}' has no completed '${prefix}*' sync snapshot to stand at`, { image: image.name, pool: image.pool.name });
  }
  const [checkpoint, markRaw] = await Promise.all([image.getMetadata(CHECKPOINT_KEY), image.getMetadata(FAILOVER_KEY)]);
  let mark: { snapshot?: unknown; at?: unknown } | undefined;
  try {
    mark = markRaw === undefined ? undefined : (JSON.parse(markRaw) as typeof mark);
  } catch { /* not ours: ignored */ }
  if (checkpoint === undefined && mark?.snapshot === snapshot && typeof mark.at === 'string') {
    return { snapshot, rolledBack: false, checkpointRemoved: false, failedOverAt: mark.at };
  }
  const snap = (await image.listSnapshots()).find((s) => s.name === snapshot)!;
  let changed = (await image.stat()).size !== snap.size;
  if (!changed) {
    for await (const batch of image.diff({ fromSnapshot: snapshot, wholeObject: true, batchSize: 1 })) {
      if (batch.length > 0) changed = true;
      break;
    }
  }
  if (changed && checkpoint === undefined && !force) {
    throw codedError('ERR_TARGET_CHANGED', `'${where}' was written since its newest sync snapshot '${snapshot}', not by an interrupted sync round (a rollback would discard those writes; pass force)`, {
      snapshot, image: image.name, pool: image.pool.name,
    });
  }
  if (changed) await image.rollbackToSnapshot(snapshot);
  // One op: the checkpoint gone, and the mark that makes a re-run leave the image alone.
  await updateRecords(image, { [FAILOVER_KEY]: JSON.stringify({ snapshot, at: new Date().toISOString() }) }, checkpoint === undefined ? [] : [CHECKPOINT_KEY]);
  return { snapshot, rolledBack: changed, checkpointRemoved: checkpoint !== undefined };
}
