// native/snapshot.cc
import type { ImageHandle } from './handles.js';

export interface NativeSnap {
  id: number;
  name: string;
  size: number;
  timestamp: number;
  namespace: 'user' | 'group' | 'trash' | 'mirror' | 'unknown';
  protected: boolean;
  mirror?: {
    state: 'primary' | 'primary-demoted' | 'non-primary' | 'non-primary-demoted' | 'unknown';
    complete: boolean;
    primaryMirrorUuid: string;
    primarySnapId: number;
    lastCopiedObjectNumber: number;
    peerUuids: string[];
  };
  trashOriginalName?: string;
  /** Group namespace: the group's pool id and name, and the group snapshot's name. */
  group?: { pool: number; name: string; snapshot: string };
}

/** A snapshot by name, or by id (`number`). */
export type NativeSnapRef = string | number;

export interface SnapshotBinding {
  /**
   * Resolves to the new snapshot's id. `knownIds`: every snapshot id (all namespaces) the image
   * had when listed since the last change, saving the read of them before the create. `flags`:
   * RBD_SNAP_CREATE_*. Metadata sent ahead (sendMetadata) is applied before it.
   */
  createSnapshot(i: ImageHandle, name: string, knownIds?: number[] | null, flags?: number): Promise<number>;
  removeSnapshot(i: ImageHandle, snap: NativeSnapRef, force?: boolean): Promise<void>;
  rollbackSnapshot(i: ImageHandle, snap: string): Promise<void>;
  protectSnapshot(i: ImageHandle, snap: string): Promise<void>;
  unprotectSnapshot(i: ImageHandle, snap: string): Promise<void>;
  /** Points the handle's reads at a snapshot (null: back to head). */
  setSnapshot(i: ImageHandle, snap: NativeSnapRef | null): Promise<void>;
  listSnapshots(i: ImageHandle): Promise<NativeSnap[]>;
  /** Every snapshot id (all namespaces) in the image header, read now: one round trip, no refresh. */
  snapshotIds(i: ImageHandle): Promise<number[]>;
}

export const snapshotFunctions: Record<keyof SnapshotBinding, true> = {
  createSnapshot: true, removeSnapshot: true, rollbackSnapshot: true, protectSnapshot: true,
  unprotectSnapshot: true, setSnapshot: true, listSnapshots: true, snapshotIds: true,
};
