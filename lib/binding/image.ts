// native/image.cc
import type { ImageHandle } from './handles.js';

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

export interface ImageBinding {
  /** Reads target.length bytes into target; resolves to target (a copy if short) or, with count, the bytes read. */
  read(i: ImageHandle, offset: number, target: Buffer, count: false): Promise<Buffer>;
  read(i: ImageHandle, offset: number, target: Buffer, count: true): Promise<number>;
  write(i: ImageHandle, data: Buffer, offset: number): Promise<number>;
  discard(i: ImageHandle, offset: number, length: number): Promise<number>;
  writeZeroes(i: ImageHandle, offset: number, length: number): Promise<number>;
  flush(i: ImageHandle): Promise<number>;
  statImage(i: ImageHandle): Promise<NativeStat>;
  resizeImage(i: ImageHandle, size: number, allowShrink: boolean): Promise<void>;
  updateFeatures(i: ImageHandle, features: number, enabled: boolean): Promise<void>;
  getMetadata(i: ImageHandle, key: string): Promise<string>;
  setMetadata(i: ImageHandle, key: string, value: string): Promise<void>;
  removeMetadata(i: ImageHandle, key: string): Promise<void>;
  /**
   * Sets [key, value, …] and removes keys in one atomic op on the header, without librbd's notify
   * (hold the exclusive lock). With `absent`, only if none of those keys is set (else ECANCELED).
   */
  updateMetadata(i: ImageHandle, set: string[], remove: string[], absent?: string[]): Promise<void>;
  listMetadata(i: ImageHandle): Promise<Record<string, string>>;
  /**
   * updateMetadata's op, sent ahead of this handle's next createSnapshot or closeImage (they wait
   * until it is on the wire; RADOS applies it first): no round trip of its own. Settles with its
   * own reply.
   */
  sendMetadata(i: ImageHandle, set: string[], remove: string[]): Promise<void>;
  closeImage(i: ImageHandle): Promise<void>;
  /** The exclusive lock's mode (librbd's number) and owners; null when nobody holds it. */
  getLockOwners(i: ImageHandle): Promise<{ mode: number; owners: string[] } | null>;
  /** Breaks `owner`'s lock held in `mode` (librbd blocklists the owner first). */
  breakLock(i: ImageHandle, mode: number, owner: string): Promise<void>;
  /** The header's watchers: every client with the image open. */
  listWatchers(i: ImageHandle): Promise<{ address: string; id: number; cookie: string }[]>;
}

export const imageFunctions: Record<keyof ImageBinding, true> = {
  read: true, write: true, discard: true, writeZeroes: true, flush: true, statImage: true, resizeImage: true,
  updateFeatures: true, getMetadata: true, setMetadata: true, removeMetadata: true, listMetadata: true, updateMetadata: true, sendMetadata: true, closeImage: true,
  getLockOwners: true, breakLock: true, listWatchers: true,
};
