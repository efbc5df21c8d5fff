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
// A group (syncGroup's copy): every member goes to the group's newest group snapshot, not to its own
// newest copy: a round that died after copying some members left those a round ahead, and only the
// group snapshot is a crash-consistent set. All members are checked first; one refusal refuses all.
//
// Refusals (per image): EBUSY while another client uses the image (workloads already started: a
// rollback would discard their writes): a live lock owner, i.e. one still watching the image (a killed
// sync round's lock record outlives it), or any other client with it open. Then the lock is taken
// (librbd breaks a dead owner's) and held until the image is done, so no workload starts in between;
// what to do is decided on what holds under the lock. ERR_TARGET_CHANGED when the head was written since
// that snapshot and no interrupted round (or an interrupted failover, its pending mark) explains it
// (force rolls back anyway); ERR_NO_COMMON_SNAPSHOT when the image has no completed sync snapshot (a
// group member: no copy of the group's newest group snapshot).
import picomatch from 'picomatch';
import { native } from '../binding/index.js';
import { codedError, type RbdErrorCode } from '../core/errors.js';
import { kHandle, kTrack } from '../core/internal.js';
import { Pool } from '../core/pool.js';
import type { Image } from '../core/image.js';
import { checkBool, checkGroupName, checkImageName, checkName, checkOptions, checkSignal, describe } from '../core/validate.js';
import { identityKey, parseIdentity } from './identity.js';
import { CHECKPOINT_KEY } from './replicate/checkpoint.js';
import { updateRecords } from './replicate/target.js';
import { byName, DEFAULT_PREFIX, prefixed } from './sync.js';
import { isRound } from './sync-group.js';

/** Image metadata: the snapshot a failover put the image at, and when. */
export const FAILOVER_KEY = 'rbd-stream.failover';

export interface SyncFailoverOptions {
  /** B's pool holding the copies. */
  pool: Pool;
  /** A glob ('db-*') or a list of image names; default: every image in the pool. */
  images?: string | string[];
  /**
   * A consistency group of the pool that syncGroup fills (instead of images): its members go to the
   * group's newest group snapshot, all of them or none.
   */
  group?: string;
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
  /** With `group`: the group and the group snapshot its members now stand at. */
  group?: { name: string; snapshot: string };
}

const REFUSALS = new Set(['EBUSY', 'ERR_TARGET_CHANGED', 'ERR_NO_COMMON_SNAPSHOT']);

/** What failing an image over takes, decided before anything is changed. */
interface Plan {
  image: Image;
  snapshot: string;
  checkpoint: string | undefined;
  changed: boolean;
  failedOverAt?: string;
}

/**
 * For each image of B's pool (or those named, or a group's members): rolled back to its newest
 * completed sync round (a group's: its newest group snapshot), checkpoint removed.
 */
export async function syncFailover(options: SyncFailoverOptions): Promise<SyncFailoverResult> {
  const o = checkOptions<SyncFailoverOptions>(options, 'syncFailover options', ['pool', 'images', 'group', 'prefix', 'force', 'signal']);
  if (!(o.pool instanceof Pool)) throw new TypeError(`pool must be a Pool, got ${describe(o.pool)}`);
  const prefix = o.prefix === undefined ? DEFAULT_PREFIX : checkName(o.prefix, 'prefix', { forbid: '/@' });
  const force = checkBool(o.force, 'force') ?? false;
  const signal = checkSignal(o.signal);
  if (o.group !== undefined) {
    checkGroupName(o.group, 'group');
    if (o.images !== undefined) throw new TypeError('images and group exclude each other (a group fails over all its members)');
    return failoverGroup(o.pool, o.group, prefix, force, signal);
  }
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
        images.push({ ok: true, name, ...(await apply(await plan(image, prefix, force))) });
      } finally {
        await image.close();
      }
    } catch (e) {
      const err = e as { code?: string; message?: string };
      images.push({ ok: false, name, error: { code: err.code ?? 'ERR_UNKNOWN', message: err.message ?? String(e) } });
    }
  }
  return result(images);
}

function result(images: SyncFailoverImageResult[], group?: SyncFailoverResult['group']): SyncFailoverResult {
  const ok = images.filter((x) => x.ok);
  return {
    images,
    summary: { total: images.length, ok: ok.length, failed: images.length - ok.length, rolledBack: ok.filter((x) => x.ok && x.rolledBack).length },
    ...(group ? { group } : {}),
  };
}

async function failoverGroup(pool: Pool, name: string, prefix: string, force: boolean, signal: AbortSignal | undefined): Promise<SyncFailoverResult> {
  const group = await pool.openGroup(name);
  const [snaps, members] = await Promise.all([group.listSnapshots(), group.listImages()]);
  const newest = snaps.filter((s) => s.state === 'complete' && isRound(s.name, prefix)).sort(byName).pop()?.name;
  if (newest === undefined) {
    throw codedError('ERR_NO_COMMON_SNAPSHOT', `group '${group.spec}' has no complete '${prefix}*' group snapshot to stand at`, { pool: pool.name, group: name });
  }
  const foreign = members.find((m) => m.poolId !== pool.id);
  if (foreign) {
    throw codedError('EINVAL', `member '${foreign.pool}/${foreign.name}' of group '${group.spec}' is in another pool: not a syncGroup copy`, { errno: -22, pool: pool.name, group: name });
  }
  // Every member planned (and locked) before any is changed: one refusal leaves the whole set as it is.
  const plans: Plan[] = [];
  const refusals: { name: string; code: string; message: string }[] = [];
  try {
    for (const m of [...members].sort(byName)) {
      signal?.throwIfAborted();
      let image: Image | undefined;
      try {
        image = await pool.openImage(m.name);
        plans.push(await plan(image, prefix, force, newest));
      } catch (e) {
        await image?.close().catch(() => {});
        const err = e as { code?: string; message?: string };
        refusals.push({ name: m.name, code: err.code ?? 'ERR_UNKNOWN', message: err.message ?? String(e) });
      }
    }
    if (refusals.length > 0) {
      // A refusal (what the operator must act on) before an operational failure.
      const first = refusals.find((r) => REFUSALS.has(r.code)) ?? refusals[0];
      throw Object.assign(codedError(first.code as RbdErrorCode, `group '${group.spec}' not failed over (no member was changed): ${refusals.map((r) => `${r.name}: ${r.message}`).join('; ')}`, {
        pool: pool.name, group: name, image: first.name, snapshot: newest, ...(first.code === 'EBUSY' ? { errno: -16 } : {}),
      }), { members: refusals });
    }
    const images: SyncFailoverImageResult[] = [];
    for (const p of plans) images.push({ ok: true, name: p.image.name, ...(await apply(p)) });
    return result(images, { name, snapshot: newest });
  } finally {
    await Promise.allSettled(plans.map((p) => p.image.close()));
  }
}

interface State {
  /** Sync snapshots holding a completed copy (their identity record is bound then), oldest first. */
  completed: string[];
  checkpoint: string | undefined;
  mark: { snapshot?: unknown; at?: unknown; pending?: unknown } | undefined;
}

async function readState(image: Image, prefix: string): Promise<State> {
  // One listing of the metadata for every record, not a round trip per snapshot.
  const [snaps, meta] = await Promise.all([prefixed(image, prefix), image.listMetadata()]);
  const completed = snaps.filter((s) => {
    const raw = meta[identityKey(s.name)];
    return raw !== undefined && parseIdentity(raw) !== undefined;
  }).map((s) => s.name);
  const checkpoint = meta[CHECKPOINT_KEY];
  const markRaw = meta[FAILOVER_KEY];
  let mark: State['mark'];
  try {
    mark = markRaw === undefined ? undefined : (JSON.parse(markRaw) as State['mark']);
  } catch { /* not ours: ignored */ }
  return { completed, checkpoint, mark };
}

/**
 * Decides what the image needs, changing nothing but the lock (taken unless force). `at`: the
 * snapshot to stand at (a group's); default the newest sync snapshot holding a completed copy.
 */
async function plan(image: Image, prefix: string, force: boolean, at?: string): Promise<Plan> {
  const where = `${image.pool.spec}/${image.name}`;
  const standAt = (st: State): string => {
    const snapshot = at ?? st.completed[st.completed.length - 1];
    if (snapshot === undefined || !st.completed.includes(snapshot)) {
      throw codedError('ERR_NO_COMMON_SNAPSHOT', at === undefined
        ? `'${where}' has no completed '${prefix}*' sync snapshot to stand at`
        : `'${where}' holds no completed copy '${at}' of the group's newest group snapshot`, { image: image.name, pool: image.pool.name, ...(at ? { snapshot: at } : {}) });
    }
    return snapshot;
  };
  const done = (st: State, snapshot: string) =>
    st.checkpoint === undefined && st.mark?.snapshot === snapshot && typeof st.mark.at === 'string' ? st.mark.at : undefined;
  let st = await readState(image, prefix);
  let snapshot = standAt(st);
  // Before the lock: an image failed over already may be in use by now, and is left alone.
  let failedOverAt = done(st, snapshot);
  if (failedOverAt !== undefined) return { image, snapshot, checkpoint: undefined, changed: false, failedOverAt };
  if (!force) {
    await takeLock(image, where);
    // Decided on what holds under the lock (a round or another failover may have ended meanwhile).
    st = await readState(image, prefix);
    snapshot = standAt(st);
    failedOverAt = done(st, snapshot);
    if (failedOverAt !== undefined) return { image, snapshot, checkpoint: undefined, changed: false, failedOverAt };
  }
  const changed = await differs(image, snapshot);
  // A change is explained by an interrupted round (its checkpoint, or, for a group member a round
  // ahead, a newer completed copy the head still equals) or by a failover of this image to this
  // snapshot that stopped after its pending mark (its rollback shows as a change).
  const newer = st.completed.slice(st.completed.indexOf(snapshot) + 1);
  const explained = st.checkpoint !== undefined || (st.mark?.snapshot === snapshot && st.mark.pending === true) ||
    (newer.length > 0 && !(await differs(image, newer[newer.length - 1])));
  if (changed && !explained && !force) {
    throw codedError('ERR_TARGET_CHANGED', `'${where}' was written since its ${at ? 'copy of the group snapshot' : 'newest sync snapshot'} '${snapshot}', not by an interrupted sync round (a rollback would discard those writes; pass force)`, {
      snapshot, image: image.name, pool: image.pool.name,
    });
  }
  return { image, snapshot, checkpoint: st.checkpoint, changed };
}

async function apply(p: Plan) {
  const { image, snapshot, checkpoint, changed } = p;
  if (p.failedOverAt !== undefined) return { snapshot, rolledBack: false, checkpointRemoved: false, failedOverAt: p.failedOverAt };
  if (changed) {
    // First a pending mark: a re-run after a failure past this point knows the change is the rollback's.
    await updateRecords(image, { [FAILOVER_KEY]: JSON.stringify({ snapshot, pending: true }) });
    await image.rollbackToSnapshot(snapshot);
  }
  // One op: the checkpoint gone, and the mark that makes a re-run leave the image alone.
  await updateRecords(image, { [FAILOVER_KEY]: JSON.stringify({ snapshot, at: new Date().toISOString() }) }, checkpoint === undefined ? [] : [CHECKPOINT_KEY]);
  return { snapshot, rolledBack: changed, checkpointRemoved: checkpoint !== undefined };
}

/** The head differs from `snapshot` (size or data). */
async function differs(image: Image, snapshot: string): Promise<boolean> {
  const snap = (await image.listSnapshots()).find((s) => s.name === snapshot);
  if (!snap) throw codedError('ENOENT', `snapshot '${snapshot}' of '${image.pool.spec}/${image.name}' was removed during the failover`, { errno: -2, snapshot, image: image.name, pool: image.pool.name });
  if ((await image.stat()).size !== snap.size) return true;
  for await (const batch of image.diff({ fromSnapshot: snapshot, wholeObject: true, batchSize: 1 })) return batch.length > 0;
  return false;
}

/**
 * Refuses (EBUSY) while another client uses the image: a live lock owner (one still watching the
 * image; a dead one's lock record stays until broken, and librbd breaks it when the lock is taken
 * next, here), or any other client with the image open. The lock is taken in librbd's manual mode and
 * held until the handle closes, so no workload takes it while the image is rolled back. Taking the
 * lock of a dead owner needs the 'osd blocklist' mon capability (profile rbd has it).
 */
async function takeLock(image: Image, where: string): Promise<void> {
  const busy = (what: string, cause?: unknown) =>
    codedError('EBUSY', `'${where}' is in use: ${what} (a rollback would discard its writes; stop it, or pass force). ` +
      'A client that died moments ago stays until the OSD expires its watch (30 s by default): then retry.', {
      errno: -16, image: image.name, pool: image.pool.name, ...(cause ? { cause } : {}),
    });
  const owners = await image.getLockOwners().catch((e: { code?: string }) => {
    if (e.code === 'EINVAL') return null; // no exclusive-lock feature: nobody can hold it
    throw e;
  });
  if (owners) {
    const watching = new Set((await image.listWatchers()).map((w) => w.address));
    const live = owners.owners.filter((o) => watching.has(o));
    if (live.length > 0) throw busy(`client ${live.join(', ')} holds its exclusive lock and still watches the image`);
  }
  if (owners !== null) {
    try {
      await image[kTrack](() => native.acquireLock(image[kHandle]));
    } catch (e) {
      const code = (e as { code?: string }).code;
      if (code !== 'EROFS' && code !== 'EBUSY') throw e;
      throw busy(`client ${(await image.getLockOwners().catch(() => undefined))?.owners.join(', ') || '(unknown)'} holds its exclusive lock (librbd refused to take it)`, e);
    }
  }
  // Open elsewhere without the lock (nothing written yet, read-only, or no exclusive-lock feature):
  // a rollback would change the data under it too. This connection's other handles are ours.
  const me = image.pool.rados.instanceId();
  const others = (await image.listWatchers()).filter((w) => w.id !== me);
  if (others.length > 0) throw busy(`open by ${others.map((w) => `client.${w.id} (${w.address})`).join(', ')}`);
}
