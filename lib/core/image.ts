// An open image: data path, metadata, features, snapshots, diff.
import { native, type ImageHandle } from '../binding/index.js';
import { NativeHandle } from './handle.js';
import { MAX_IO_BYTES, checkBool, checkFromSnapId, checkName, checkOptions, checkSignal, checkSnapName, checkUint, describe } from './validate.js';
import { FLAG_FAST_DIFF_INVALID, FLAG_OBJECT_MAP_INVALID, LOCK_MODES, featureBits, featureNames, lockModeName, type FeatureName, type LockMode } from './features.js';
import { snapshotCreateFlags, toSnapshotInfo, type SnapshotCreateOptions, type SnapshotInfo, type SnapshotRef } from './snapshot.js';
import { requireDiffIterate3 } from './librbd.js';
import { iterateDiff, type DiffOptions, type Extent } from './diff.js';
import type { Pool } from './pool.js';
import type { ImageGroupInfo } from './group.js';
import { kHandle, kTrack, kOnClose, kForget, kSendRecords } from './internal.js';
import type { Readable } from 'node:stream';
import { exportDiff, type ExportDiffOptions } from '../transfer/diff-export.js';
import { ImageMirror } from '../mirror/image.js';

export interface LockOwners {
  /** 'exclusive' for librbd's exclusive lock; 'unknown' for a mode this library does not know. */
  mode: LockMode;
  /** The owners' client addresses (what breakLock takes). */
  owners: string[];
}

export interface Watcher {
  /** The client's address (the form getLockOwners reports). */
  address: string;
  /** The client's global id (client.<id>). */
  id: number;
  /** The watch's cookie (a 64-bit number, as a decimal string). */
  cookie: string;
}

export interface ImageStat {
  size: number;
  objectSize: number;
  objectCount: number;
  order: number;
  id: string;
  blockNamePrefix: string;
  features: FeatureName[];
  featureBits: number;
  flags: { objectMapInvalid: boolean; fastDiffInvalid: boolean };
  stripeUnit: number;
  stripeCount: number;
  /** Data pool id, or the image's own pool id. */
  dataPoolId: number;
}

function snapArg(ref: unknown, what = 'snapshot'): string | number {
  if (typeof ref === 'string') return checkSnapName(ref, what);
  if (ref !== null && typeof ref === 'object' && 'id' in ref) return checkUint((ref as { id: unknown }).id, `${what}.id`);
  throw new TypeError(`${what} must be a name or { id }, got ${describe(ref)}`);
}

// Small reads land in views of a shared slab, as Buffer.allocUnsafe pools small buffers: one
// allocation per SLAB_BYTES instead of one per read (a Buffer per 4 KiB read cost more on the JS
// thread than librbd's own submission). A view keeps its whole slab alive.
const SLAB_BYTES = 64 * 1024;
const SLAB_MAX_READ = 16 * 1024;
let slab = Buffer.allocUnsafeSlow(SLAB_BYTES);
let slabUsed = 0;

function readTarget(length: number): Buffer {
  if (length > SLAB_MAX_READ) return Buffer.allocUnsafeSlow(length);
  if (slabUsed + length > SLAB_BYTES) {
    slab = Buffer.allocUnsafeSlow(SLAB_BYTES);
    slabUsed = 0;
  }
  const b = slab.subarray(slabUsed, slabUsed + length);
  slabUsed = (slabUsed + length + 7) & ~7; // keep views 8-byte aligned
  return b;
}

export class Image extends NativeHandle<ImageHandle> {
  readonly readOnly: boolean;
  private snapshotLabel: string | undefined;
  private mirrorOps: ImageMirror | undefined;

  /** @hidden Opened by pool.openImage(), not constructed directly. */
  constructor(
    readonly pool: Pool,
    handle: ImageHandle,
    readonly name: string,
    o: { readOnly: boolean; snapshot?: string },
  ) {
    super(handle, () => `image '${this.spec}'`);
    this.readOnly = o.readOnly;
    this.snapshotLabel = o.snapshot;
  }

  /** pool[/namespace]/image[@snapshot] */
  get spec(): string {
    return `${this.pool.spec}/${this.name}${this.snapshotLabel ? `@${this.snapshotLabel}` : ''}`;
  }

  /** The snapshot the image reads from (name or '#id'), or undefined at head. */
  get snapshot(): string | undefined {
    return this.snapshotLabel;
  }

  /** Mirroring of this image: enable/disable, promote/demote, resync, mirror snapshots, status. */
  get mirror(): ImageMirror {
    return (this.mirrorOps ??= new ImageMirror(this));
  }

  /** @internal Runs `hook` when close() begins (see Lifecycle.onClose). */
  [kOnClose](hook: () => void): () => void {
    return this.life.onClose(hook);
  }

  async stat(): Promise<ImageStat> {
    const s = await this[kTrack](() => native.statImage(this[kHandle]));
    return {
      size: s.size,
      objectSize: s.objectSize,
      objectCount: s.objectCount,
      order: s.order,
      id: s.id,
      blockNamePrefix: s.blockNamePrefix,
      features: featureNames(s.features),
      featureBits: s.features,
      flags: {
        objectMapInvalid: (s.flags & FLAG_OBJECT_MAP_INVALID) !== 0,
        fastDiffInvalid: (s.flags & FLAG_FAST_DIFF_INVALID) !== 0,
      },
      stripeUnit: s.stripeUnit,
      stripeCount: s.stripeCount,
      dataPoolId: s.dataPoolId,
    };
  }

  async size(): Promise<number> {
    return (await this.stat()).size;
  }

  /** Resizes; shrinking needs { allowShrink: true } (EINVAL otherwise, as librbd). */
  async resize(size: number, options: { allowShrink?: boolean } = {}): Promise<void> {
    checkUint(size, 'size');
    const o = checkOptions<{ allowShrink?: boolean }>(options, 'resize options', ['allowShrink']);
    const allowShrink = checkBool(o.allowShrink, 'allowShrink') ?? false;
    await this[kTrack](() => native.resizeImage(this[kHandle], size, allowShrink));
  }

  /**
   * Reads `length` bytes; a read crossing the image end returns the bytes up to it.
   * Reads of up to 16 KiB return views of a shared 64 KiB slab (as `Buffer.allocUnsafe` does for
   * small sizes): copy them, or use readInto(), to keep many small results for long.
   */
  read(offset: number, length: number): Promise<Buffer> {
    checkUint(offset, 'offset');
    checkUint(length, 'length', { max: MAX_IO_BYTES });
    return this[kTrack](() => native.read(this[kHandle], offset, readTarget(length), false));
  }

  /**
   * Reads `target.length` bytes at `offset` into `target`; resolves to the bytes read (fewer when
   * the read crosses the image end). `target` must not be touched until the promise settles.
   */
  readInto(target: Uint8Array, offset: number): Promise<number> {
    if (!(target instanceof Uint8Array)) throw new TypeError(`target must be a Buffer or Uint8Array, got ${describe(target)}`);
    if (target.length > MAX_IO_BYTES) throw new RangeError(`target is larger than ${MAX_IO_BYTES} bytes`);
    checkUint(offset, 'offset');
    const buf = Buffer.isBuffer(target) ? target : Buffer.from(target.buffer, target.byteOffset, target.byteLength);
    return this[kTrack](() => native.read(this[kHandle], offset, buf, true));
  }

  /** Writes the buffer at `offset`; resolves to the bytes written. */
  write(data: Buffer | Uint8Array, offset: number): Promise<number> {
    if (!(data instanceof Uint8Array)) throw new TypeError(`data must be a Buffer or Uint8Array, got ${describe(data)}`);
    if (data.length > MAX_IO_BYTES) throw new RangeError(`data is larger than ${MAX_IO_BYTES} bytes`);
    checkUint(offset, 'offset');
    const buf = Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    return this[kTrack](() => native.write(this[kHandle], buf, offset));
  }

  /** Deallocates a range (partial objects may be zeroed instead, or skipped: use writeZeroes for exact zeroing). */
  async discard(offset: number, length: number): Promise<void> {
    checkUint(offset, 'offset');
    checkUint(length, 'length');
    await this[kTrack](() => native.discard(this[kHandle], offset, length));
  }

  /** Makes a range read as zeroes (deallocating whole objects where possible). */
  async writeZeroes(offset: number, length: number): Promise<void> {
    checkUint(offset, 'offset');
    checkUint(length, 'length');
    await this[kTrack](() => native.writeZeroes(this[kHandle], offset, length));
  }

  async flush(): Promise<void> {
    await this[kTrack](() => native.flush(this[kHandle]));
  }

  async updateFeatures(features: FeatureName[], enabled: boolean): Promise<void> {
    const bits = featureBits(features);
    if (typeof enabled !== 'boolean') throw new TypeError('enabled must be a boolean');
    await this[kTrack](() => native.updateFeatures(this[kHandle], bits, enabled));
  }

  // --- metadata ---------------------------------------------------------

  /** The value, or undefined when the key is not set. */
  async getMetadata(key: string): Promise<string | undefined> {
    checkName(key, 'metadata key');
    try {
      return await this[kTrack](() => native.getMetadata(this[kHandle], key));
    } catch (e) {
      if ((e as { code?: string }).code === 'ENOENT') return undefined;
      throw e;
    }
  }

  async setMetadata(key: string, value: string): Promise<void> {
    checkName(key, 'metadata key');
    if (typeof value !== 'string') throw new TypeError('metadata value must be a string');
    if (value.includes('\0')) throw new TypeError('metadata value must not contain NUL');
    await this[kTrack](() => native.setMetadata(this[kHandle], key, value));
  }

  /** Removes a key (ENOENT when absent). */
  async removeMetadata(key: string): Promise<void> {
    checkName(key, 'metadata key');
    await this[kTrack](() => native.removeMetadata(this[kHandle], key));
  }

  listMetadata(): Promise<Record<string, string>> {
    return this[kTrack](() => native.listMetadata(this[kHandle]));
  }

  // --- snapshots --------------------------------------------------------

  /**
   * Creates a user snapshot of the head; resolves to its id. By default librbd first asks the
   * image's clients to quiesce (e.g. rbd-nbd's fsfreeze hook); see SnapshotCreateOptions.
   */
  async createSnapshot(name: string, options: SnapshotCreateOptions = {}): Promise<number> {
    checkSnapName(name);
    const flags = snapshotCreateFlags(options, 'createSnapshot options');
    return this[kTrack](() => native.createSnapshot(this[kHandle], name, null, flags));
  }

  /** Removes a snapshot by name or { id }; `force` unprotects it first. */
  async removeSnapshot(snapshot: SnapshotRef, options: { force?: boolean } = {}): Promise<void> {
    const ref = snapArg(snapshot);
    const o = checkOptions<{ force?: boolean }>(options, 'removeSnapshot options', ['force']);
    const force = checkBool(o.force, 'force') ?? false;
    await this[kTrack](() => native.removeSnapshot(this[kHandle], ref, force));
  }

  /**
   * User snapshots, or every namespace (mirror, trash, group) with { allNamespaces: true }. When
   * another client removes a snapshot while the list is read, the list is read again (up to 5 times,
   * then what vanished is left out), so it shows one state of the image.
   */
  async listSnapshots(options: { allNamespaces?: boolean } = {}): Promise<SnapshotInfo[]> {
    const o = checkOptions<{ allNamespaces?: boolean }>(options, 'listSnapshots options', ['allNamespaces']);
    const all = checkBool(o.allNamespaces, 'allNamespaces') ?? false;
    const list = (await this[kTrack](() => native.listSnapshots(this[kHandle]))).map(toSnapshotInfo);
    return (all ? list : list.filter((s) => s.namespace === 'user')).sort((a, b) => a.id - b.id);
  }

  /** The snapshot with this name (user namespace), or undefined. */
  async getSnapshot(name: string): Promise<SnapshotInfo | undefined> {
    checkSnapName(name);
    return (await this.listSnapshots()).find((s) => s.name === name);
  }

  async rollbackToSnapshot(name: string): Promise<void> {
    checkSnapName(name);
    await this[kTrack](() => native.rollbackSnapshot(this[kHandle], name));
  }

  async protectSnapshot(name: string): Promise<void> {
    checkSnapName(name);
    await this[kTrack](() => native.protectSnapshot(this[kHandle], name));
  }

  async unprotectSnapshot(name: string): Promise<void> {
    checkSnapName(name);
    await this[kTrack](() => native.unprotectSnapshot(this[kHandle], name));
  }

  /** Switches reads to a snapshot (name or { id }), or back to head with null. */
  async setSnapshot(snapshot: SnapshotRef | null): Promise<void> {
    const ref = snapshot === null ? null : snapArg(snapshot);
    await this[kTrack](() => native.setSnapshot(this[kHandle], ref));
    this.snapshotLabel = ref === null ? undefined : typeof ref === 'number' ? `#${ref}` : ref;
  }

  /** The consistency group the image belongs to, or undefined. */
  async getGroup(): Promise<ImageGroupInfo | undefined> {
    return (await this[kTrack](() => native.getImageGroup(this[kHandle]))) ?? undefined;
  }

  /**
   * Who holds the image's exclusive lock: the mode and the owners' client addresses (as `rbd lock ls`
   * shows them), or undefined when nobody holds it. EINVAL when the image lacks the exclusive-lock
   * feature.
   */
  async getLockOwners(): Promise<LockOwners | undefined> {
    const r = await this[kTrack](() => native.getLockOwners(this[kHandle]));
    return r ? { mode: lockModeName(r.mode), owners: r.owners } : undefined;
  }

  /**
   * Breaks the lock `owner` (an address from getLockOwners) holds, e.g. of a client that died: the next
   * client need not wait for the OSD to expire its watch. librbd blocklists the owner first
   * (`rbd_blocklist_on_break_lock`), so a client that was only slow cannot write on (its writes fail
   * with ESHUTDOWN). EBUSY when `owner` does not hold it (any more). (librbd breaks exclusive locks
   * only, so there is no mode to choose.)
   */
  async breakLock(owner: string): Promise<void> {
    if (typeof owner !== 'string' || owner === '') throw new TypeError(`owner must be a client address from getLockOwners(), got ${describe(owner)}`);
    await this[kTrack](() => native.breakLock(this[kHandle], LOCK_MODES.indexOf('exclusive'), owner));
  }

  /**
   * The clients watching the image's header, as `rbd status` lists them: every client that has the
   * image open, including this one. A lock owner (getLockOwners) whose address is not among them is
   * dead: its lock record stays until somebody breaks it (librbd does when it next takes the lock).
   * A client killed moments ago still watches until the OSD expires its watch (30 s by default).
   */
  async listWatchers(): Promise<Watcher[]> {
    return this[kTrack](() => native.listWatchers(this[kHandle]));
  }

  // --- diff -------------------------------------------------------------

  /**
   * Changed extents since `fromSnapshot` (or all allocated extents), as
   * batches pulled at the consumer's pace. Equivalent to `rbd diff`.
   */
  diff(options: DiffOptions = {}): AsyncIterable<Extent[]> {
    const o = checkOptions<DiffOptions>(options, 'diff options', [
      'fromSnapshot',
      'fromSnapId',
      'offset',
      'length',
      'wholeObject',
      'includeParent',
      'signal',
      'batchSize',
    ]);
    if (o.fromSnapshot !== undefined) checkSnapName(o.fromSnapshot, 'fromSnapshot');
    const fromId = checkFromSnapId(o.fromSnapId, o.fromSnapshot);
    const offset = o.offset === undefined ? 0 : checkUint(o.offset, 'offset');
    if (o.length !== undefined) checkUint(o.length, 'length');
    const wholeObject = checkBool(o.wholeObject, 'wholeObject') ?? false;
    const includeParent = checkBool(o.includeParent, 'includeParent') ?? true;
    const signal = checkSignal(o.signal);
    const batchSize = o.batchSize === undefined ? 1024 : checkUint(o.batchSize, 'batchSize', { min: 1, max: 1 << 20 });
    this.life.ensureOpen();
    const self = this;
    return {
      async *[Symbol.asyncIterator]() {
        if (fromId !== undefined) requireDiffIterate3({ operation: 'diff', pool: self.pool.name, image: self.name });
        const st = await self.stat();
        const end = Math.min(st.size, o.length === undefined ? st.size : offset + o.length);
        // Ranges of 64 striping periods (256 MiB with defaults).
        const step = st.objectSize * Math.max(1, st.stripeCount) * 64;
        yield* iterateDiff({
          handle: () => self[kHandle],
          from: fromId ?? o.fromSnapshot ?? null,
          offset,
          end,
          step,
          wholeObject,
          includeParent,
          batchSize,
          signal,
          track: (start) => self[kTrack](start),
        });
      },
    };
  }

  /**
   * A Readable producing exactly what `rbd export-diff [--from-snap F] image@snapshot -` writes
   * (v1), or the v2 variant. Extents are read ahead (bounded by `concurrency` and 64 MiB) and
   * only as fast as the consumer drains the stream; extents that read back as zeroes become 'z'.
   * Bad options throw (TypeError/RangeError); other errors (e.g. ENOENT for a missing snapshot)
   * are emitted as 'error' on the stream.
   */
  exportDiff(options: ExportDiffOptions): Readable {
    return exportDiff(this, options);
  }

  /**
   * @internal See kSendRecords. Not tracked: the close that follows must not wait for the reply
   * (the native side keeps the order). Rejects with ERR_CLOSED once closing.
   */
  [kSendRecords](set: Record<string, string>, remove: string[]): Promise<void> {
    try {
      return native.sendMetadata(this[kHandle], Object.entries(set).flat(), remove);
    } catch (e) {
      return Promise.reject(e);
    }
  }

  /** @internal */
  protected async release(h: ImageHandle): Promise<void> {
    this.pool[kForget](this);
    await native.closeImage(h);
  }
}
