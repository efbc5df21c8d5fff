// Snapshot types and conversions.
import type { NativeSnap } from '../binding/index.js';
import { checkBool, checkOptions } from './validate.js';

/** 'unknown': a namespace newer than the librbd headers the addon was built with. */
export type SnapshotNamespace = 'user' | 'group' | 'trash' | 'mirror' | 'unknown';

export interface MirrorSnapshotInfo {
  state: 'primary' | 'primary-demoted' | 'non-primary' | 'non-primary-demoted' | 'unknown';
  /** Non-primary: whether the copy from the primary finished. */
  complete: boolean;
  primaryMirrorUuid: string;
  primarySnapId: number;
  lastCopiedObjectNumber: number;
  peerUuids: string[];
}

export interface SnapshotInfo {
  id: number;
  name: string;
  size: number;
  timestamp: Date;
  namespace: SnapshotNamespace;
  protected: boolean;
  mirror?: MirrorSnapshotInfo;
  /** Trash namespace: the name the snapshot had before it was trashed. */
  trashOriginalName?: string;
  /**
   * Group namespace (a member's share of a group snapshot): the group's pool id and name, and the
   * group snapshot's name. Open the member at `{ id }` of this entry to read it as of the group snapshot.
   */
  group?: { pool: number; name: string; snapshot: string };
}

/** A snapshot by user name, or by id (any namespace). */
export type SnapshotRef = string | { id: number };

/** How a snapshot is taken of an image (or of a group's members) that clients may be writing. */
export interface SnapshotCreateOptions {
  /**
   * Do not ask the image's clients to quiesce first (RBD_SNAP_CREATE_SKIP_QUIESCE): two notify
   * round trips less. Their in-flight writes may or may not be in the snapshot.
   */
  skipQuiesce?: boolean;
  /** Take the snapshot even if a client fails to quiesce (RBD_SNAP_CREATE_IGNORE_QUIESCE_ERROR). */
  ignoreQuiesceError?: boolean;
}

/** librbd's RBD_SNAP_CREATE_* flags (librbd.h). */
export const SNAP_CREATE_SKIP_QUIESCE = 1;
export const SNAP_CREATE_IGNORE_QUIESCE_ERROR = 2;

/** The RBD_SNAP_CREATE_* flags for checked options (TypeError on bad ones). */
export function snapshotCreateFlags(options: SnapshotCreateOptions, what: string): number {
  const o = checkOptions<SnapshotCreateOptions>(options, what, ['skipQuiesce', 'ignoreQuiesceError']);
  const skip = checkBool(o.skipQuiesce, 'skipQuiesce') ?? false;
  const ignore = checkBool(o.ignoreQuiesceError, 'ignoreQuiesceError') ?? false;
  if (skip && ignore) throw new TypeError('skipQuiesce and ignoreQuiesceError exclude each other');
  return (skip ? SNAP_CREATE_SKIP_QUIESCE : 0) | (ignore ? SNAP_CREATE_IGNORE_QUIESCE_ERROR : 0);
}

export function toSnapshotInfo(s: NativeSnap): SnapshotInfo {
  const info: SnapshotInfo = {
    id: s.id,
    name: s.name,
    size: s.size,
    timestamp: new Date(s.timestamp),
    namespace: s.namespace,
    protected: s.protected,
  };
  if (s.mirror) info.mirror = s.mirror;
  if (s.trashOriginalName !== undefined) info.trashOriginalName = s.trashOriginalName;
  if (s.group) info.group = s.group;
  return info;
}
