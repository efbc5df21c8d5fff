// Loads the addon once (build/ first, then prebuilds/) and types its surface.
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

const require = createRequire(import.meta.url);
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

/** Opaque native handles (type-tagged externals). */
export type ClusterHandle = { readonly __cluster: unique symbol };
export type IoCtxHandle = { readonly __ioctx: unique symbol };
export type ImageHandle = { readonly __image: unique symbol };

export interface NativeStat {
  size: number;
  objectSize: number;
  objectCount: number;
  order: number;
  id: string;
  blockNamePrefix: string;
  features: number;
  flags: number;
  stripeUnit: number;
  stripeCount: number;
  dataPoolId: number;
}

export interface NativeSnap {
  id: number;
  name: string;
  size: number;
  timestamp: number;
  namespace: 'user' | 'group' | 'trash' | 'mirror';
  protected: boolean;
  mirror?: {
    state: 'primary' | 'primary-demoted' | 'non-primary' | 'non-primary-demoted';
    complete: boolean;
    primaryMirrorUuid: string;
    primarySnapId: number;
    lastCopiedObjectNumber: number;
    peerUuids: string[];
  };
  trashOriginalName?: string;
}

export interface NativeBinding {
  librbdVersion: string;
  makeError(rc: number, op: string, pool?: string, image?: string, snap?: string): Error;
  errnoCode(errno: number): string;
  connect(o: { conf?: string; clusterName?: string; user: string; config: [string, string][] }): Promise<ClusterHandle>;
  fsid(c: ClusterHandle): string;
  listPools(c: ClusterHandle): Promise<string[]>;
  command(c: ClusterHandle, target: 'mon' | 'mgr', cmd: string, input?: Buffer): Promise<{ out: Buffer; status: string; rc: number }>;
  closeConnection(c: ClusterHandle): Promise<void>;
  openPool(c: ClusterHandle, name: string, ns?: string): Promise<IoCtxHandle>;
  closePool(p: IoCtxHandle): Promise<void>;
  poolId(p: IoCtxHandle): number;
  createImage(
    p: IoCtxHandle,
    name: string,
    size: number,
    o: { features?: number; order?: number; dataPool?: string; stripeUnit?: number; stripeCount?: number },
  ): Promise<void>;
  listImages(p: IoCtxHandle): Promise<{ id: string; name: string }[]>;
  removeImage(p: IoCtxHandle, name: string): Promise<void>;
  renameImage(p: IoCtxHandle, from: string, to: string): Promise<void>;
  openImage(
    p: IoCtxHandle,
    name: string,
    o: { readOnly?: boolean; snapName?: string; snapId?: number; byId?: boolean },
  ): Promise<ImageHandle>;
  /** Reads target.length bytes into target; resolves to target (a copy if short) or, with count, the bytes read. */
  read(i: ImageHandle, offset: number, target: Buffer, count: false): Promise<Buffer>;
  read(i: ImageHandle, offset: number, target: Buffer, count: true): Promise<number>;
  write(i: ImageHandle, data: Buffer, offset: number): Promise<number>;
  mutate(i: ImageHandle, kind: 'discard' | 'zero' | 'flush', offset?: number, length?: number): Promise<number>;
  stat(i: ImageHandle): Promise<NativeStat>;
  resize(i: ImageHandle, size: number, allowShrink: boolean): Promise<void>;
  updateFeatures(i: ImageHandle, features: number, enabled: boolean): Promise<void>;
  metadataGet(i: ImageHandle, key: string): Promise<string>;
  metadataSet(i: ImageHandle, key: string, value: string): Promise<void>;
  metadataRemove(i: ImageHandle, key: string): Promise<void>;
  metadataList(i: ImageHandle): Promise<Record<string, string>>;
  closeImage(i: ImageHandle): Promise<void>;
  snapCreate(i: ImageHandle, name: string): Promise<void>;
  snapRemove(i: ImageHandle, snap: string | number, force?: boolean): Promise<void>;
  snapOp(i: ImageHandle, op: 'rollback' | 'protect' | 'unprotect' | 'set', snap: string | number | null): Promise<void>;
  snapList(i: ImageHandle): Promise<NativeSnap[]>;
  diffRange(
    i: ImageHandle,
    fromSnap: string | null,
    offset: number,
    length: number,
    wholeObject: boolean,
    includeParent: boolean,
  ): Promise<Float64Array>;
}

function load(): NativeBinding {
  // `npm run test:asan` points this at an AddressSanitizer build (scripts/asan.mjs).
  if (process.env.RBD_STREAM_ADDON) return require(path.resolve(process.env.RBD_STREAM_ADDON)) as NativeBinding;
  const gypBuild = require('node-gyp-build') as (dir: string) => NativeBinding;
  return gypBuild(root);
}

export const native: NativeBinding = load();
