// Snapshot identity: which cluster/pool/image/snapshot a replicated snapshot
// came from. Recorded on the target (image metadata) for every snapshot
// replicate() creates, so an incremental copy can prove its base is the same
// snapshot of the same source image — never just a same-named one.
import type { Image } from '../core/image.js';
import { codedError } from '../core/errors.js';
import { checkSnapName } from '../core/validate.js';

export interface SnapshotIdentity {
  v: 1;
  /** Source cluster fsid. */
  fsid: string;
  pool: string;
  poolId: number;
  namespace: string;
  image: string;
  imageId: string;
  snapId: number;
  snapName: string;
}

/** Metadata key holding the identity of the target's snapshot `snapName`. */
export const IDENTITY_KEY_PREFIX = 'rbd-stream.snap.';
export const identityKey = (snapName: string): string => `${IDENTITY_KEY_PREFIX}${snapName}`;

/** The identity of `snapName` on the source image (ENOENT when it has no such user snapshot). */
export async function sourceIdentity(image: Image, snapName: string): Promise<SnapshotIdentity> {
  checkSnapName(snapName);
  return identityOf(image, `snapshot '${snapName}'`, snapName, (image) => image.getSnapshot(snapName));
}

/**
 * The identity of the source's snapshot with id `snapId`, in any namespace (a mirror, trash or group
 * snapshot too; snapName is its current name there). ENOENT when the image has no such snapshot.
 */
export async function sourceIdentityById(image: Image, snapId: bigint): Promise<SnapshotIdentity> {
  return identityOf(image, `snapshot id ${snapId}`, undefined, async (image) =>
    (await image.listSnapshots({ allNamespaces: true })).find((s) => BigInt(s.id) === snapId));
}

async function identityOf(image: Image, what: string, snapshot: string | undefined,
  find: (image: Image) => Promise<{ id: number; name: string } | undefined>): Promise<SnapshotIdentity> {
  const [fsid, st, snap] = await Promise.all([image.pool.rados.fsid(), image.stat(), find(image)]);
  if (!snap) {
    throw codedError('ENOENT', `${what} not found on source image '${image.pool.spec}/${image.name}'`, {
      errno: -2,
      ...(snapshot === undefined ? {} : { snapshot }),
      image: image.name,
      pool: image.pool.name,
    });
  }
  return identityFrom(image, fsid, st.id, snap);
}

/** The identity of `image`'s snapshot `snap`, from facts already read (cluster fsid, image id). */
export function identityFrom(image: Image, fsid: string, imageId: string, snap: { id: number; name: string }): SnapshotIdentity {
  return {
    v: 1,
    fsid,
    pool: image.pool.name,
    poolId: image.pool.id,
    namespace: image.pool.namespace,
    image: image.name,
    imageId,
    snapId: snap.id,
    snapName: snap.name,
  };
}

/**
 * The target snapshot recorded as a copy of `id` (replicate records one per snapshot it creates),
 * or undefined: how an id-based base (fromSnapId) maps to the target, where names cannot.
 */
export async function findCopyOf(target: Image, id: SnapshotIdentity): Promise<string | undefined> {
  const snaps = await target.listSnapshots();
  const recs = await Promise.all(snaps.map((s) => readIdentity(target, s.name)));
  const i = recs.findIndex((r) => sameSource(r, id));
  return i < 0 ? undefined : snaps[i].name;
}

/** Records on the target that its snapshot `snapName` is a copy of `id`. */
export async function recordIdentity(target: Image, snapName: string, id: SnapshotIdentity): Promise<void> {
  checkSnapName(snapName);
  await target.setMetadata(identityKey(snapName), JSON.stringify(id));
}

/** The recorded identity of the target's snapshot `snapName`, or undefined (none, or unreadable). */
export async function readIdentity(target: Image, snapName: string): Promise<SnapshotIdentity | undefined> {
  checkSnapName(snapName);
  const raw = await target.getMetadata(identityKey(snapName));
  return raw === undefined ? undefined : parseIdentity(raw);
}

export function parseIdentity(raw: string): SnapshotIdentity | undefined {
  try {
    const o = JSON.parse(raw) as Partial<SnapshotIdentity>;
    if (
      o && o.v === 1 && typeof o.fsid === 'string' && typeof o.pool === 'string' && typeof o.poolId === 'number' &&
      typeof o.namespace === 'string' && typeof o.image === 'string' && typeof o.imageId === 'string' &&
      typeof o.snapId === 'number' && typeof o.snapName === 'string'
    ) {
      return o as SnapshotIdentity;
    }
  } catch {
    // fall through: a corrupt record counts as no record
  }
  return undefined;
}

/** Same snapshot of the same image: fsid, pool id, namespace, image id and snapshot id all match. */
export function sameSource(a: SnapshotIdentity | undefined, b: SnapshotIdentity | undefined): boolean {
  if (!a || !b) return false;
  return a.fsid === b.fsid && a.poolId === b.poolId && a.namespace === b.namespace && a.imageId === b.imageId && a.snapId === b.snapId;
}

/**
 * `rec`, the record kept with the snapshot of id `snapId`, proves that snapshot is a copy of `of`:
 * same source snapshot, and (once replicate bound the record to the snapshot it made) made as that
 * very snapshot, not recreated under its name since. Used where the proof is held by the side
 * that received the copy while it now acts as the source (failback: B's snapshot is A's copy).
 */
export function isRecordedCopy(rec: SnapshotIdentity | undefined, of: SnapshotIdentity, snapId: number): boolean {
  if (!rec || !sameSource(rec, of)) return false;
  const bound = (rec as { targetSnapId?: unknown }).targetSnapId;
  return typeof bound !== 'number' || bound === snapId;
}
