// native/mirror/image.cc: per-image mirroring
import type { ImageHandle } from './handles.js';
import type { NativeGlobalStatus } from './mirror-pool.js';

export interface NativeImageMirrorInfo {
  globalId: string;
  /** Raw rbd_mirror_image_state_t. */
  state: number;
  primary: boolean;
  /** Raw rbd_mirror_image_mode_t, -1 when librbd did not report it. */
  mode: number;
}

export interface MirrorImageBinding {
  /** mode: raw rbd_mirror_image_mode_t. */
  enableImageMirroring(i: ImageHandle, mode: number): Promise<void>;
  disableImageMirroring(i: ImageHandle, force: boolean): Promise<void>;
  promoteImage(i: ImageHandle, force: boolean): Promise<void>;
  demoteImage(i: ImageHandle): Promise<void>;
  resyncImage(i: ImageHandle): Promise<void>;
  /** Resolves to the new snapshot's id. */
  createMirrorSnapshot(i: ImageHandle): Promise<number>;
  getImageMirrorInfo(i: ImageHandle): Promise<NativeImageMirrorInfo>;
  /** Raw rbd_mirror_image_mode_t. */
  getImageMirrorMode(i: ImageHandle): Promise<number>;
  getImageMirrorStatus(i: ImageHandle): Promise<NativeGlobalStatus>;
}

export const mirrorImageFunctions: Record<keyof MirrorImageBinding, true> = {
  enableImageMirroring: true, disableImageMirroring: true, promoteImage: true, demoteImage: true, resyncImage: true,
  createMirrorSnapshot: true, getImageMirrorInfo: true, getImageMirrorMode: true, getImageMirrorStatus: true,
};
