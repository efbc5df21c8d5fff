// replicate() options: the public types and their validation (TypeError/RangeError before any
// cluster call).
import { checkBool, checkFromSnapId, checkOptions, checkSignal, checkSnapName, checkUint, checkImageName, describe } from '../../core/validate.js';
import { Image } from '../../core/image.js';
import { Pool, createImageArgs, type CreateImageOptions } from '../../core/pool.js';
import type { SnapshotIdentity } from '../identity.js';
import type { NativeCopyResult } from '../../binding/copy.js';

export interface ReplicateTargetSpec {
  pool: Pool;
  name: string;
  /**
   * Create the image (size of toSnapshot) when it does not exist. Full copies only. The layout
   * defaults to the source's (object size, and its striping when that fits the object size);
   * features default to the target cluster's, as `rbd create` would choose them.
   */
  create?: CreateImageOptions;
}

export interface ReplicateProgress {
  bytesDone: number;
  bytesTotal: number;
  extentsDone: number;
  /** Bytes per second since the copy started. */
  rate: number;
}

export interface ReplicateOptions {
  source: Image;
  fromSnapshot?: string;
  /**
   * Or the source's from-snapshot by id (exclusive with `fromSnapshot`), in any namespace: also a
   * mirror, trash or group snapshot. The target's base is then the target snapshot whose recorded
   * identity is that source snapshot (same cluster, pool, image and snapshot id) — found by
   * identity, since a name cannot map an id. Needs rbd_diff_iterate3 (Reef 18.2.5+, Squid 19.2.3+),
   * else ENOTSUP.
   */
  fromSnapId?: number | bigint;
  /**
   * The source snapshot to copy: by default the user snapshot named `toSnapshot`. With `toSnapId`,
   * the source snapshot with this id instead, in any namespace (e.g. a member's group snapshot), and
   * `toSnapshot` only names the snapshot created on the target (its recorded identity is the
   * source snapshot's).
   */
  toSnapshot: string;
  toSnapId?: number | bigint;
  /**
   * An "anchor": a source user snapshot no newer than the base (`fromSnapshot` / `fromSnapId`),
   * from which the changes are enumerated (rbd_diff_iterate2 by name) instead of from the base
   * itself. The target's base is still the base's recorded copy. Everything changed since the base
   * also changed since the anchor, so the copy is exact; it writes more bytes (what changed between
   * anchor and base too). With `fromSnapId` this reaches a base no by-name call can (a group
   * snapshot) where librbd lacks rbd_diff_iterate3. ERR_ANCHOR_AFTER_BASE when the anchor was taken
   * after the base.
   */
  diffFromSnapshot?: string;
  target: ReplicateTargetSpec | Image;
  /**
   * Reads and writes in flight at most (default 4096, up to 16384). A far target needs many: each
   * write waits a round trip, and small changes are one write each (the rbd CLI's import-diff,
   * through librbd's cache, has up to 24 MiB of them in flight: 6,144 of 4 KiB). Bounded separately
   * from memory (inflightBytes).
   */
  concurrency?: number;
  /** Bytes per read/write at most (default 1 MiB). */
  chunkSize?: number;
  /**
   * Data buffers in flight at most, in bytes (default 80 MiB; at least chunkSize). Reads and writes
   * share one buffer per chunk with librbd (no copies): copying 2 GiB 0, 10 and 25 ms away, a process
   * running the package peaked at 193–234 MiB RSS with 80 MiB (196–216 with 64, 205–249 with 96), under
   * the 256 MiB bound. More helps far targets: see docs/remote.md.
   */
  inflightBytes?: number;
  /**
   * Cap on the data sent to the target, in bytes per second (write payloads; with verify, also the
   * target reads). Default: none. Zeroed ranges cost no bandwidth (write_zeroes carries no data).
   */
  bandwidth?: number;
  /** Checksum every changed extent on both sides after the copy (xxh3, native). */
  verify?: boolean;
  /** Skip the target-head-changed check (the copy overwrites local changes). */
  force?: boolean;
  /**
   * Write nearby changes as one op, rewriting up to this many unchanged bytes between them with
   * the (identical) source data; default 0: exact writes, as `rbd import-diff`. Fewer ops helps
   * when the target's OSDs are op-bound (many small scattered changes), at a price: more bytes
   * sent, and target snapshots stop sharing the rewritten bytes with the head. Gaps holding an
   * all-zero 4 KiB block are never bridged. Bridged changes share one source read; a run never
   * crosses a chunk (chunkSize).
   */
  writeGap?: number;
  signal?: AbortSignal;
  /** Called at most ~10×/s. */
  onProgress?: (p: ReplicateProgress) => void;
}

/**
 * Key of replicate()'s test hooks in its options object. Not exported from the package: tests and
 * benchmarks import it from here (or use withReplicateTestHooks).
 */
export const kReplicateTestHooks: unique symbol = Symbol('rbd-stream.replicateTestHooks');

export interface ReplicateTestHooks {
  /** Runs after the copy, before verify. */
  beforeVerify?: (target: Image) => Promise<void> | void;
  /** Runs after the data (and verify), before the identity record and the target snapshot. */
  beforeTargetSnapshot?: (target: Image) => Promise<void> | void;
  /** Runs once the target snapshot exists, before its identity record is bound (a throw here is a lost last step). */
  afterTargetSnapshot?: (target: Image) => Promise<void> | void;
  /** Checkpoint interval in ms (default 2000). */
  checkpointMs?: number;
  /** Diff enumeration: 'auto' (object map when valid, refined), 'fine', 'whole' (whole objects). */
  enumeration?: 'auto' | 'fine' | 'whole';
  /** Changed extents at most this many bytes apart share one source read (writes stay exact); default 0, never. */
  readGap?: number;
  /** Copy each object's first block ahead of its chunks into a target this copy created (default true). */
  pretouch?: boolean;
  /** Send an object's small writes after its first as one RADOS op, beside librbd (default true). */
  objectWrites?: boolean;
  /** Called with each native job's result (copy, then verify). */
  onJobResult?: (r: NativeCopyResult) => void;
}

/** replicate() options with test hooks; the symbol key is not part of the public ReplicateOptions. */
export type ReplicateOptionsWithHooks = ReplicateOptions & { [kReplicateTestHooks]?: ReplicateTestHooks };

/** `options` plus test hooks, typed as the public options (an inline symbol key would not be). */
export function withReplicateTestHooks(options: ReplicateOptions, hooks: ReplicateTestHooks): ReplicateOptions {
  const withHooks: ReplicateOptionsWithHooks = { ...options, [kReplicateTestHooks]: hooks };
  return withHooks;
}

export interface ReplicateResult {
  bytesRead: number;
  /** Data bytes written (zero runs excluded). */
  bytesWritten: number;
  /** Bytes made zero via write_zeroes (never sent as data). */
  bytesZeroed: number;
  /** Extents (as enumerated by the diff) processed. */
  extents: number;
  seconds: number;
  /** The native copy phase alone (diff enumeration and data), without the control steps. */
  dataSeconds: number;
  /**
   * The most data-buffer bytes the copy (or verify) held in flight at once: at most inflightBytes,
   * except that one chunk in flight is always admitted (with verify it holds two buffers).
   */
  peakInflightBytes: number;
  /** True when a checkpoint from an interrupted run let this run skip work. */
  resumed: boolean;
  /**
   * Set when the target already held `toSnapshot` as the recorded copy of this source snapshot
   * (an earlier run finished it, even if that run reported a failure of its last step, such as a
   * timeout whose op the OSD still applied): nothing was read or written.
   */
  alreadyCopied?: true;
  /** The identity recorded for the new target snapshot. */
  snapshot: SnapshotIdentity;
  /** The target snapshot the incremental copy was based on (also when found from fromSnapId). */
  base?: string;
  /**
   * Forced incremental copies: the target's own changes since its base, overwritten with the
   * source's data (empty when it had none). A resumed run also lists what it wrote before.
   */
  discarded?: DiscardedChanges;
}

/** The target's changed ranges since its base that a forced copy overwrote. */
export interface DiscardedChanges {
  /** Offset and length of each range (adjacent ones merged), at most 1000 listed. */
  ranges: { offset: number; length: number }[];
  /** Ranges in all, listed or not. */
  count: number;
  /** Bytes in all ranges. */
  bytes: number;
  /** More ranges than listed. */
  truncated: boolean;
}

/** The options once checked, with their defaults applied. */
export interface CheckedReplicateOptions {
  source: Image;
  toSnap: string;
  fromSnap: string | undefined;
  /** The source's from-snapshot by id (fromSnapId); fromSnap is then undefined. */
  fromSnapId: bigint | undefined;
  /** The source's to-snapshot by id (toSnapId); toSnap then names the target snapshot only. */
  toSnapId: bigint | undefined;
  /** The anchor the diff is enumerated from (diffFromSnapshot). */
  diffFrom: string | undefined;
  concurrency: number;
  chunkSize: number;
  inflightBytes: number;
  bandwidth: number;
  verify: boolean;
  force: boolean;
  signal: AbortSignal | undefined;
  onProgress: ((p: ReplicateProgress) => void) | undefined;
  beforeVerify: ((target: Image) => Promise<void> | void) | undefined;
  beforeTargetSnapshot: ((target: Image) => Promise<void> | void) | undefined;
  afterTargetSnapshot: ((target: Image) => Promise<void> | void) | undefined;
  checkpointMs: number;
  enumeration: number;
  readGap: number | undefined;
  pretouch: boolean;
  objectWrites: boolean;
  onJobResult: ((r: NativeCopyResult) => void) | undefined;
  writeGap: number;
  /** Where to open or create the target; undefined when the caller passed an open Image. */
  targetSpec: ReplicateTargetSpec | undefined;
  target: ReplicateTargetSpec | Image;
}

export const isImage = (v: unknown): v is Image => v instanceof Image;

export const DEFAULT_CONCURRENCY = 4096;
export const MAX_CONCURRENCY = 16384;
export const DEFAULT_INFLIGHT_BYTES = 80 << 20;
export const DEFAULT_CHUNK_SIZE = 1 << 20;

/** `inflightBytes` option: at least one chunk, at most 1 GiB. */
export function checkInflightBytes(v: unknown, chunkSize = DEFAULT_CHUNK_SIZE, what = 'inflightBytes'): number {
  return checkUint(v, what, { min: chunkSize, max: 1 << 30 });
}

/**
 * Each of `copies` copies running at once gets this share of a total `inflightBytes` (default
 * DEFAULT_INFLIGHT_BYTES), at least one chunk: the process's buffers stay bounded by the total
 * however many copies run (syncPool, syncGroup), as `bandwidth` is shared.
 */
export function inflightShare(total: number | undefined, copies: number): number {
  return Math.max(DEFAULT_CHUNK_SIZE, Math.floor((total ?? DEFAULT_INFLIGHT_BYTES) / Math.max(1, copies)));
}

/**
 * Each of `copies` copies running at once gets this share of DEFAULT_CONCURRENCY (at least 256)
 * when the caller set no `concurrency` (which is per copy): the target sees about as many ops in
 * flight from a pool or group sync as from one copy.
 */
export function concurrencyShare(perCopy: number | undefined, copies: number): number {
  return perCopy ?? Math.max(256, Math.floor(DEFAULT_CONCURRENCY / Math.max(1, copies)));
}

/** `bandwidth` option: a positive number of bytes per second, or undefined (0 when none). */
export function checkBandwidth(v: unknown, what = 'bandwidth'): number {
  if (v === undefined) return 0;
  if (typeof v !== 'number' || !Number.isFinite(v)) throw new TypeError(`${what} must be a number of bytes per second, got ${describe(v)}`);
  if (v < 1 || v > Number.MAX_SAFE_INTEGER) throw new RangeError(`${what} must be at least 1 byte per second`);
  return Math.floor(v);
}

export function checkReplicateOptions(options: ReplicateOptions): CheckedReplicateOptions {
  const o = checkOptions<ReplicateOptions>(options, 'replicate options', [
    'source', 'fromSnapshot', 'fromSnapId', 'toSnapshot', 'toSnapId', 'diffFromSnapshot', 'target', 'concurrency', 'chunkSize', 'inflightBytes', 'bandwidth',
    'verify', 'force', 'signal', 'onProgress', 'writeGap',
  ]);
  if (o === undefined || !isImage(o.source)) throw new TypeError(`source must be an open Image, got ${describe(o?.source)}`);
  const source = o.source;
  const toSnap = checkSnapName(o.toSnapshot, 'toSnapshot');
  const fromSnap = o.fromSnapshot === undefined ? undefined : checkSnapName(o.fromSnapshot, 'fromSnapshot');
  const fromSnapId = checkFromSnapId(o.fromSnapId, o.fromSnapshot);
  const toSnapId = checkFromSnapId(o.toSnapId, undefined, 'toSnapId');
  // By name the source's from- and to-snapshot are the target's too: they must differ.
  if (toSnapId === undefined && fromSnap === toSnap) throw new RangeError('fromSnapshot and toSnapshot must differ');
  if (toSnapId !== undefined && fromSnapId !== undefined && toSnapId === fromSnapId) throw new RangeError('fromSnapId and toSnapId must differ');
  const diffFrom = o.diffFromSnapshot === undefined ? undefined : checkSnapName(o.diffFromSnapshot, 'diffFromSnapshot');
  if (diffFrom !== undefined && fromSnap === undefined && fromSnapId === undefined) {
    throw new TypeError('diffFromSnapshot needs a base (fromSnapshot or fromSnapId)');
  }
  const concurrency = o.concurrency === undefined ? DEFAULT_CONCURRENCY : checkUint(o.concurrency, 'concurrency', { min: 1, max: MAX_CONCURRENCY });
  const chunkSize = o.chunkSize === undefined ? DEFAULT_CHUNK_SIZE : checkUint(o.chunkSize, 'chunkSize', { min: 4096, max: 64 << 20 });
  if (chunkSize % 4096 !== 0) throw new RangeError('chunkSize must be a multiple of 4096');
  const inflightBytes = o.inflightBytes === undefined ? Math.max(DEFAULT_INFLIGHT_BYTES, chunkSize) : checkInflightBytes(o.inflightBytes, chunkSize);
  const bandwidth = checkBandwidth(o.bandwidth);
  const verify = checkBool(o.verify, 'verify') ?? false;
  const force = checkBool(o.force, 'force') ?? false;
  const signal = checkSignal(o.signal);
  if (o.onProgress !== undefined && typeof o.onProgress !== 'function') throw new TypeError('onProgress must be a function');
  // Symbol keys pass checkOptions (it checks string keys); the hooks are checked the same way.
  const hooks = checkOptions<ReplicateTestHooks>((o as ReplicateOptionsWithHooks)[kReplicateTestHooks], 'replicate test hooks', [
    'beforeVerify', 'beforeTargetSnapshot', 'afterTargetSnapshot', 'checkpointMs', 'enumeration', 'readGap', 'pretouch', 'objectWrites', 'onJobResult',
  ]);
  if (hooks.beforeVerify !== undefined && typeof hooks.beforeVerify !== 'function') throw new TypeError('beforeVerify hook must be a function');
  for (const k of ['beforeTargetSnapshot', 'afterTargetSnapshot'] as const) {
    if (hooks[k] !== undefined && typeof hooks[k] !== 'function') throw new TypeError(`${k} hook must be a function`);
  }
  const checkpointMs = hooks.checkpointMs === undefined ? 2000 : checkUint(hooks.checkpointMs, 'checkpointMs hook', { min: 10 });
  const enumeration = ({ auto: 0, fine: 1, whole: 2 } as Record<string, number>)[hooks.enumeration ?? 'auto'];
  if (enumeration === undefined) throw new RangeError(`enumeration hook must be 'auto', 'fine' or 'whole'`);
  const readGap = hooks.readGap === undefined ? undefined : checkUint(hooks.readGap, 'readGap hook');
  const pretouch = checkBool(hooks.pretouch, 'pretouch hook') ?? true;
  const objectWrites = checkBool(hooks.objectWrites, 'objectWrites hook') ?? true;
  if (hooks.onJobResult !== undefined && typeof hooks.onJobResult !== 'function') throw new TypeError('onJobResult hook must be a function');
  const writeGap = o.writeGap === undefined ? 0 : checkUint(o.writeGap, 'writeGap', { max: 64 << 20 });
  let targetSpec: ReplicateTargetSpec | undefined;
  if (!isImage(o.target)) {
    const t = checkOptions<ReplicateTargetSpec>(o.target, 'target', ['pool', 'name', 'create']);
    if (!(t.pool instanceof Pool)) throw new TypeError('target.pool must be a Pool (or pass an open Image as target)');
    checkImageName(t.name, 'target.name');
    if (t.create !== undefined) createImageArgs(t.create, 'target.create');
    targetSpec = t as ReplicateTargetSpec;
  } else if (o.target.readOnly) {
    throw new TypeError('target image must be open for writing at its head');
  }
  return {
    source, toSnap, fromSnap, fromSnapId, toSnapId, diffFrom, concurrency, chunkSize, inflightBytes, bandwidth, verify, force, signal, onProgress: o.onProgress,
    beforeVerify: hooks.beforeVerify, beforeTargetSnapshot: hooks.beforeTargetSnapshot, afterTargetSnapshot: hooks.afterTargetSnapshot, checkpointMs, enumeration, readGap, pretouch, objectWrites, onJobResult: hooks.onJobResult, writeGap, targetSpec, target: o.target as ReplicateTargetSpec | Image,
  };
}
