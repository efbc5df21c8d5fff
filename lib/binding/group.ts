// native/group.cc (consistency groups; librbd's group API is name-based: pool handle + group name)
import type { ImageHandle, IoCtxHandle } from './handles.js';

export interface NativeGroupImage {
  name: string;
  pool: string;
  poolId: number;
  state: 'attached' | 'incomplete' | 'unknown';
}

export interface NativeGroupSnap {
  name: string;
  state: 'incomplete' | 'complete' | 'unknown';
}

export interface GroupBinding {
  createGroup(p: IoCtxHandle, group: string): Promise<void>;
  /** ENOENT for a missing group (librbd itself succeeds on one). */
  removeGroup(p: IoCtxHandle, group: string): Promise<void>;
  groupExists(p: IoCtxHandle, group: string): Promise<boolean>;
  listGroups(p: IoCtxHandle): Promise<string[]>;
  renameGroup(p: IoCtxHandle, from: string, to: string): Promise<void>;
  addGroupImage(groupPool: IoCtxHandle, group: string, imagePool: IoCtxHandle, image: string): Promise<void>;
  removeGroupImage(groupPool: IoCtxHandle, group: string, imagePool: IoCtxHandle, image: string): Promise<void>;
  /** ENOENT for a missing group (librbd lists one as empty). */
  listGroupImages(p: IoCtxHandle, group: string): Promise<NativeGroupImage[]>;
  createGroupSnapshot(p: IoCtxHandle, group: string, snap: string, skipQuiesce: boolean, ignoreQuiesceError: boolean): Promise<void>;
  removeGroupSnapshot(p: IoCtxHandle, group: string, snap: string): Promise<void>;
  renameGroupSnapshot(p: IoCtxHandle, group: string, from: string, to: string): Promise<void>;
  /** ENOENT for a missing group (librbd lists one as empty). */
  listGroupSnapshots(p: IoCtxHandle, group: string): Promise<NativeGroupSnap[]>;
  /**
   * Rolls every member back. onProgress gets librbd's (objects done, objects total) of whichever
   * member reported last, at most every 100 ms; resolves to the last pair reported (null if none).
   */
  rollbackGroupSnapshot(
    p: IoCtxHandle,
    group: string,
    snap: string,
    onProgress?: (done: number, total: number) => void,
  ): Promise<{ done: number; total: number } | null>;
  getImageGroup(i: ImageHandle): Promise<{ pool: string; poolId: number; name: string } | null>;
}

export const groupFunctions: Record<keyof GroupBinding, true> = {
  createGroup: true, removeGroup: true, groupExists: true, listGroups: true, renameGroup: true,
  addGroupImage: true, removeGroupImage: true, listGroupImages: true, createGroupSnapshot: true,
  removeGroupSnapshot: true, renameGroupSnapshot: true, listGroupSnapshots: true, rollbackGroupSnapshot: true,
  getImageGroup: true,
};
