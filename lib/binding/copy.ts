// native/copy/binding.cc (the engine itself: native/copy/engine.cc)
import type { CopyJobHandle, ImageHandle } from './handles.js';

export interface NativeCopyOptions {
  mode: 'copy' | 'verify';
  /** The source's from-snapshot: a name (diff_iterate2) or an id (diff_iterate3). */
  fromSnap: string | bigint | null;
  toSnapId: number;
  size: number;
  startOffset: number;
  chunkSize: number;
  /** Reads/writes in flight (each chunk holds one slot). */
  concurrency: number;
  /** Data buffer bytes in flight (≥ chunkSize). */
  inflightBytes: number;
  /** Target data bytes per second (0: unlimited). */
  bandwidth: number;
  targetZeroed: boolean;
  fillGaps: boolean;
  checkpointPrefix: string;
  /** No checkpoint exists yet: write the first just before the first change to the target. */
  checkpointBeforeFirstWrite: boolean;
  checkpointMs: number;
  enumeration: number;
  extra?: Float64Array;
  readGap?: number;
  writeGap?: number;
  /** Copy each object's first block ahead of its chunks (targetZeroed targets with an object map). */
  pretouch: boolean;
  /** Send an object's small writes after its first as one RADOS op (native/copy/object_writes.h). */
  objectWrites: boolean;
}

export interface NativeCopyResult {
  bytesRead: number;
  bytesWritten: number;
  bytesZeroed: number;
  extents: number;
  doneOffset: number;
  peakInflightBytes: number;
  aborted: boolean;
  mismatchOffset: number;
  enumerateMs: number;
  copyMs: number;
  usedObjectMap: boolean;
  /** Objects whose first block was written ahead of their chunks (pre-touch). */
  pretouched: number;
  /** Object writes: RADOS ops sent, the writes they carried, and those sent again through librbd (EOLDSNAPC). */
  objectWriteOps: number;
  objectWrites: number;
  objectWritesRedone: number;
}

export interface CopyBinding {
  startCopy(
    src: ImageHandle,
    dst: ImageHandle,
    o: NativeCopyOptions,
    onProgress: (done: number, total: number, extents: number) => void,
  ): {
    job: CopyJobHandle;
    /** Settles at the end, or as soon as an op on the target fails (the job then drains on). */
    promise: Promise<NativeCopyResult>;
    /** Resolves once the job has ended and released both images. */
    ended: Promise<void>;
  };
  cancelCopy(job: CopyJobHandle): void;
  /** Takes the image's exclusive lock (held until close). */
  acquireLock(img: ImageHandle): Promise<void>;
}

export const copyFunctions: Record<keyof CopyBinding, true> = { startCopy: true, cancelCopy: true, acquireLock: true };
