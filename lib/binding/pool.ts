// native/pool.cc
import type { ClusterHandle, ImageHandle, IoCtxHandle } from './handles.js';

export interface NativeCreateImageOptions {
  features?: number;
  order?: number;
  dataPool?: string;
  stripeUnit?: number;
  stripeCount?: number;
}

export interface PoolBinding {
  openPool(c: ClusterHandle, name: string, ns?: string): Promise<IoCtxHandle>;
  closePool(p: IoCtxHandle): Promise<void>;
  getPoolId(p: IoCtxHandle): number;
  createImage(p: IoCtxHandle, name: string, size: number, o: NativeCreateImageOptions): Promise<void>;
  listImages(p: IoCtxHandle): Promise<{ id: string; name: string }[]>;
  removeImage(p: IoCtxHandle, name: string): Promise<void>;
  renameImage(p: IoCtxHandle, from: string, to: string): Promise<void>;
  openImage(
    p: IoCtxHandle,
    name: string,
    o: { readOnly?: boolean; snapName?: string; snapId?: number; byId?: boolean },
  ): Promise<ImageHandle>;
}

export const poolFunctions: Record<keyof PoolBinding, true> = {
  openPool: true, closePool: true, getPoolId: true, createImage: true, listImages: true,
  removeImage: true, renameImage: true, openImage: true,
};
