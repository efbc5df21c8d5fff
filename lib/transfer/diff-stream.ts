// exportDiff / importDiff: the `rbd export-diff` stream, produced from and applied to images.
import { Readable, addAbortSignal } from 'node:stream';
import { codedError } from '../core/errors.js';
import { checkBool, checkOptions, checkSignal, checkSnapName, checkUint, describe } from '../core/validate.js';
import {
  END_RECORD,
  encodeBanner,
  encodeExtentHead,
  encodeName,
  encodeProtect,
  encodeSize,
  parseDiff,
  TAG,
  type ByteSource,
  type DiffVersion,
} from './diff-format.js';
import type { Image } from '../core/image.js';
import { readIdentity, recordIdentity, sameSource, type SnapshotIdentity } from './identity.js';

export interface ExportDiffOptions {
  /** Export only what changed since this snapshot (an incremental diff); default: everything allocated. */
  fromSnapshot?: string;
  /** The snapshot to export (required): the stream's 't' record. */
  snapshot: string;
  /** Stream format: 1 (default, what `rbd export-diff`/`import-diff` speak) or 2. */
  format?: DiffVersion;
  /** Diff by whole objects (fast-diff object map): faster listing, more data. */
  wholeObject?: boolean;
  /** Reads in flight (default 10, as rbd_concurrent_management_ops). */
  concurrency?: number;
  signal?: AbortSignal;
  onProgress?: (p: ExportProgress) => void;
}

export interface ExportProgress {
  /** Image offset reached (of `size`). */
  offset: number;
  size: number;
  /** Bytes emitted as 'w' data / as 'z' ranges so far. */
  dataBytes: number;
  zeroBytes: number;
}

/** Records larger than this are split (rbd emits per-object extents, ≤ 32 MiB for order ≤ 25). */
const MAX_EXTENT = 32 << 20;
const READ_BUDGET = 64 << 20;
const ZEROES = Buffer.alloc(1 << 20);

export function isZero(b: Buffer): boolean {
  for (let o = 0; o < b.length; o += ZEROES.length) {
    const n = Math.min(ZEROES.length, b.length - o);
    if (!b.subarray(o, o + n).equals(n === ZEROES.length ? ZEROES : ZEROES.subarray(0, n))) return false;
  }
  return true;
}

function checkFormat(v: unknown): DiffVersion {
  if (v === undefined) return 1;
  if (v !== 1 && v !== 2) throw new RangeError(`format must be 1 or 2, got ${describe(v)}`);
  return v;
}

/**
 * A Readable producing exactly what `rbd export-diff [--from-snap F] image@snapshot -` writes
 * (v1), or the v2 variant. Extents are read ahead (bounded by `concurrency` and 64 MiB) and
 * only as fast as the consumer drains the stream; extents that read back as zeroes become 'z'.
 * Errors (e.g. ENOENT for a missing snapshot) are emitted as 'error' on the stream.
 */
export function exportDiff(image: Image, options: ExportDiffOptions): Readable {
  const o = checkOptions<ExportDiffOptions>(options, 'exportDiff options', [
    'fromSnapshot', 'snapshot', 'format', 'wholeObject', 'concurrency', 'signal', 'onProgress',
  ]);
  const snapshot = checkSnapName(o.snapshot, 'snapshot');
  const from = o.fromSnapshot === undefined ? undefined : checkSnapName(o.fromSnapshot, 'fromSnapshot');
  const version = checkFormat(o.format);
  const wholeObject = checkBool(o.wholeObject, 'wholeObject') ?? false;
  const concurrency = o.concurrency === undefined ? 10 : checkUint(o.concurrency, 'concurrency', { min: 1, max: 256 });
  const signal = checkSignal(o.signal);
  if (o.onProgress !== undefined && typeof o.onProgress !== 'function') throw new TypeError('onProgress must be a function');
  const onProgress = o.onProgress;
  if (image.closed) throw codedError('ERR_CLOSED', `image '${image.spec}' is closed`);

  async function* generate(): AsyncGenerator<Buffer> {
    // Our own handle at the snapshot: the caller's image stays where it is.
    const snap = await image.pool.openImage(image.name, { snapshot, readOnly: true });
    try {
      const st = await snap.stat();
      if (from !== undefined && !(await snap.getSnapshot(from))) {
        throw codedError('ENOENT', `export-diff: from-snapshot '${from}' of image '${image.pool.spec}/${image.name}' does not exist`, {
          errno: -2, operation: 'export-diff', pool: image.pool.name, image: image.name, snapshot: from,
        });
      }
      const head: Buffer[] = [encodeBanner(version)];
      if (from !== undefined) head.push(encodeName(version, TAG.from, from));
      head.push(encodeName(version, TAG.to, snapshot));
      if (version === 2) head.push(encodeProtect((await snap.getSnapshot(snapshot))?.protected ?? false));
      head.push(encodeSize(version, st.size));
      yield Buffer.concat(head);

      const progress: ExportProgress = { offset: 0, size: st.size, dataBytes: 0, zeroBytes: 0 };
      type Pending = { offset: number; length: number; data?: Promise<Buffer> };
      const window: Pending[] = [];
      let inflightBytes = 0;
      const emit = async function* (p: Pending): AsyncGenerator<Buffer> {
        let buf: Buffer | undefined;
        if (p.data) {
          buf = await p.data;
          inflightBytes -= p.length;
          if (buf.length !== p.length) {
            throw codedError('EIO', `export-diff: short read at ${p.offset} (+${p.length}) of '${snap.spec}'`);
          }
          if (isZero(buf)) buf = undefined;
        }
        if (buf) {
          yield encodeExtentHead(version, false, p.offset, p.length);
          yield buf;
          progress.dataBytes += p.length;
        } else {
          yield encodeExtentHead(version, true, p.offset, p.length);
          progress.zeroBytes += p.length;
        }
        progress.offset = p.offset + p.length;
        onProgress?.({ ...progress });
      };
      for await (const batch of snap.diff({ fromSnapshot: from, wholeObject, signal })) {
        for (const e of batch) {
          for (let off = e.offset; off < e.offset + e.length; off += MAX_EXTENT) {
            const length = Math.min(MAX_EXTENT, e.offset + e.length - off);
            const p: Pending = { offset: off, length };
            if (e.exists) {
              // Keep the window bounded before starting another read.
              while (window.length >= concurrency || (window.length > 0 && inflightBytes + length > READ_BUDGET)) {
                yield* emit(window.shift()!);
              }
              p.data = snap.read(off, length);
              p.data.catch(() => {}); // observed in emit(); no unhandled rejection if we stop early
              inflightBytes += length;
            }
            window.push(p);
          }
        }
      }
      while (window.length > 0) yield* emit(window.shift()!);
      progress.offset = st.size;
      onProgress?.({ ...progress });
      yield END_RECORD;
    } finally {
      await snap.close();
    }
  }

  const stream = Readable.from(generate(), { objectMode: false, highWaterMark: 4 << 20 });
  if (signal) addAbortSignal(signal, stream);
  return stream;
}

// --- import ---------------------------------------------------------------------------------

export interface ImportDiffOptions {
  /**
   * Skip the target-unchanged check (head differs from the from-snapshot → ERR_TARGET_CHANGED)
   * and the identity guard. rbd's own checks (from-snapshot exists, to-snapshot does not) stay.
   */
  force?: boolean;
  /**
   * Identity of the source's from-snapshot. When given and the target's from-snapshot has a
   * recorded identity (rbd-stream.snap.<name> metadata), they must be the same source snapshot,
   * else ERR_WRONG_BASE. The rbd stream format has no room for identity, so the caller supplies it.
   */
  expectSource?: SnapshotIdentity;
  /** Identity of the source's to-snapshot, recorded on the target after the snapshot is created. */
  recordSource?: SnapshotIdentity;
  /** Writes in flight (default 10). */
  concurrency?: number;
  signal?: AbortSignal;
  onProgress?: (p: ImportProgress) => void;
}

export interface ImportProgress {
  /** Stream bytes consumed. */
  streamBytes: number;
  bytesWritten: number;
  bytesZeroed: number;
  /** Image offset reached and the image size (from the 's' record). */
  offset: number;
  size: number;
}

export interface ImportDiffResult {
  version: DiffVersion;
  fromSnapshot?: string;
  toSnapshot?: string;
  size: number;
  resized: boolean;
  dataExtents: number;
  zeroExtents: number;
  bytesWritten: number;
  bytesZeroed: number;
  /** Whether the to-snapshot was protected (v2 'p'). */
  protected: boolean;
  seconds: number;
}

const WRITE_CHUNK = 4 << 20;
const WRITE_BUDGET = 64 << 20;

function refusal(code: string, errno: number, message: string, image: Image, snapshot?: string) {
  return codedError(code, message, {
    errno, operation: 'import-diff', pool: image.pool.name, namespace: image.pool.namespace || undefined, image: image.name, snapshot,
  });
}

/**
 * Applies an rbd diff stream (v1 or v2, ours or `rbd export-diff`'s) to a writable image, with
 * import-diff's checks: the 'f' snapshot must exist on the target (ENOENT), the 't' one must not
 * (EEXIST). Unless `force`: the target must be unchanged since the from-snapshot
 * (ERR_TARGET_CHANGED) and, when both identities are known, based on the same source snapshot
 * (ERR_WRONG_BASE). 's' resizes the target; writes are pipelined; at 'e' the to-snapshot is created
 * (and protected for a v2 'p'). Corrupt input rejects with ERR_DIFF_* codes and no to-snapshot.
 */
export async function importDiff(input: ByteSource, image: Image, options: ImportDiffOptions = {}): Promise<ImportDiffResult> {
  const o = checkOptions<ImportDiffOptions>(options, 'importDiff options', [
    'force', 'expectSource', 'recordSource', 'concurrency', 'signal', 'onProgress',
  ]);
  const force = checkBool(o.force, 'force') ?? false;
  const concurrency = o.concurrency === undefined ? 10 : checkUint(o.concurrency, 'concurrency', { min: 1, max: 256 });
  const signal = checkSignal(o.signal);
  if (o.onProgress !== undefined && typeof o.onProgress !== 'function') throw new TypeError('onProgress must be a function');
  for (const k of ['expectSource', 'recordSource'] as const) {
    const v = o[k];
    if (v !== undefined && (v === null || typeof v !== 'object' || (v as { v?: unknown }).v !== 1)) {
      throw new TypeError(`${k} must be a SnapshotIdentity, got ${describe(v)}`);
    }
  }
  if (input === null || typeof input !== 'object') throw new TypeError(`input must be a Readable or an iterable of Buffers, got ${describe(input)}`);
  if (image.readOnly) throw refusal('EROFS', -30, `import-diff: image '${image.spec}' is open read-only`, image);
  const t0 = performance.now();

  const initial = await image.stat();
  const res: ImportDiffResult = {
    version: 1, size: initial.size, resized: false, dataExtents: 0, zeroExtents: 0, bytesWritten: 0, bytesZeroed: 0, protected: false, seconds: 0,
  };
  const progress: ImportProgress = { streamBytes: 0, bytesWritten: 0, bytesZeroed: 0, offset: 0, size: initial.size };

  // Pipelined writes: at most `concurrency` ops / WRITE_BUDGET bytes in flight; the first failure wins.
  const inflight = new Set<Promise<void>>();
  let inflightBytes = 0;
  let failure: unknown;
  const issue = async (bytes: number, op: () => Promise<unknown>, done: () => void) => {
    while (inflight.size >= concurrency || (inflight.size > 0 && inflightBytes + bytes > WRITE_BUDGET)) await Promise.race(inflight);
    if (failure) throw failure;
    inflightBytes += bytes;
    const p: Promise<void> = op().then(
      () => { done(); },
      (e) => { failure ??= e; },
    ).finally(() => { inflightBytes -= bytes; inflight.delete(p); });
    inflight.add(p);
  };
  const settle = async () => {
    while (inflight.size > 0) await Promise.allSettled([...inflight]);
    if (failure) throw failure;
  };

  // A 'w' record's bytes, gathered into writes of up to WRITE_CHUNK.
  let pend: Buffer[] = [];
  let pendOff = 0;
  let pendLen = 0;
  const flushPending = async () => {
    if (pendLen === 0) return;
    const buf = pend.length === 1 ? pend[0] : Buffer.concat(pend, pendLen);
    const off = pendOff;
    const len = pendLen;
    pend = [];
    pendLen = 0;
    // An all-zero block becomes write_zeroes, so the target stays as sparse as the source.
    if (isZero(buf)) await issue(0, () => image.writeZeroes(off, len), () => { res.bytesZeroed += len; });
    else await issue(len, () => image.write(buf, off), () => { res.bytesWritten += len; });
    progress.offset = off + len;
  };

  let toSnap: string | undefined;
  let sawEnd = false;
  let lastProgress = 0;
  try {
    for await (const ev of parseDiff(countBytes(input, (n) => { progress.streamBytes += n; }), { initialSize: initial.size })) {
      signal?.throwIfAborted();
      switch (ev.type) {
        case 'banner':
          res.version = ev.version;
          break;
        case 'from': {
          res.fromSnapshot = ev.name;
          const snap = await image.getSnapshot(ev.name);
          if (!snap) {
            throw refusal('ENOENT', -2, `import-diff: start snapshot '${ev.name}' does not exist on '${image.pool.spec}/${image.name}'`, image, ev.name);
          }
          if (!force) await guardBase(image, ev.name, snap.size, o.expectSource);
          break;
        }
        case 'to': {
          toSnap = res.toSnapshot = ev.name;
          if (await image.getSnapshot(ev.name)) {
            throw refusal('EEXIST', -17, `import-diff: end snapshot '${ev.name}' already exists on '${image.pool.spec}/${image.name}'`, image, ev.name);
          }
          break;
        }
        case 'protect':
          res.protected = ev.protected;
          break;
        case 'size':
          res.size = progress.size = ev.size;
          if (ev.size !== initial.size) {
            await image.resize(ev.size, { allowShrink: true });
            res.resized = true;
          }
          break;
        case 'write':
          await flushPending();
          res.dataExtents++;
          pendOff = ev.offset;
          break;
        case 'data':
          if (pendLen > 0 && pendLen + ev.data.length > WRITE_CHUNK) await flushPending();
          if (pendLen === 0) pendOff = ev.offset;
          // The parser hands out views of the source's chunks; the write keeps them referenced.
          pend.push(ev.data);
          pendLen += ev.data.length;
          break;
        case 'zero': {
          await flushPending();
          res.zeroExtents++;
          const { offset, length } = ev;
          await issue(0, () => image.writeZeroes(offset, length), () => { res.bytesZeroed += length; });
          progress.offset = offset + length;
          break;
        }
        case 'end':
          await flushPending();
          sawEnd = true;
          break;
      }
      if (failure) throw failure;
      if (o.onProgress && Date.now() - lastProgress >= 100) {
        lastProgress = Date.now();
        o.onProgress({ ...progress, bytesWritten: res.bytesWritten, bytesZeroed: res.bytesZeroed });
      }
    }
    await settle();
  } catch (e) {
    // Never leave writes running behind the caller's back.
    await Promise.allSettled([...inflight]);
    throw e;
  }
  if (!sawEnd) throw codedError('ERR_DIFF_TRUNCATED', 'stream ended without the end record');
  await image.flush();
  if (toSnap !== undefined) {
    await image.createSnapshot(toSnap);
    if (res.protected) await image.protectSnapshot(toSnap);
    if (o.recordSource) await recordIdentity(image, toSnap, o.recordSource);
  }
  res.seconds = (performance.now() - t0) / 1000;
  o.onProgress?.({ ...progress, offset: res.size, bytesWritten: res.bytesWritten, bytesZeroed: res.bytesZeroed });
  return res;
}

/** Unless forced: the target must still equal its from-snapshot, and come from the expected source. */
async function guardBase(image: Image, from: string, snapSize: number, expect: SnapshotIdentity | undefined): Promise<void> {
  if (expect) {
    const recorded = await readIdentity(image, from);
    if (recorded && !sameSource(recorded, expect)) {
      throw refusal('ERR_WRONG_BASE', -22,
        `import-diff: snapshot '${from}' of '${image.pool.spec}/${image.name}' was replicated from ${recorded.pool}/${recorded.image}@${recorded.snapName} ` +
        `(fsid ${recorded.fsid}), not from ${expect.pool}/${expect.image}@${expect.snapName} (fsid ${expect.fsid})`, image, from);
    }
  }
  const size = await image.size();
  let changed = size !== snapSize;
  if (!changed) {
    for await (const batch of image.diff({ fromSnapshot: from, wholeObject: true, batchSize: 1 })) {
      if (batch.length > 0) { changed = true; break; }
    }
  }
  if (changed) {
    throw refusal('ERR_TARGET_CHANGED', -22,
      `import-diff: '${image.pool.spec}/${image.name}' was modified after snapshot '${from}' (use force to apply anyway)`, image, from);
  }
}

/** Passes chunks through, counting bytes (keeps a Readable undestroyed when the parser stops at 'e'). */
function countBytes(input: ByteSource, add: (n: number) => void): AsyncIterable<Uint8Array | string> {
  const s = input as { iterator?: (o: { destroyOnReturn: boolean }) => AsyncIterator<Uint8Array> };
  const it: AsyncIterator<Uint8Array | string> | Iterator<Uint8Array> =
    typeof s.iterator === 'function' ? s.iterator({ destroyOnReturn: false })
      : Symbol.asyncIterator in (input as object) ? (input as AsyncIterable<Uint8Array>)[Symbol.asyncIterator]()
        : (input as Iterable<Uint8Array>)[Symbol.iterator]();
  return {
    [Symbol.asyncIterator]: () => ({
      async next() {
        const r = await it.next();
        if (!r.done) add(typeof r.value === 'string' ? Buffer.byteLength(r.value, 'latin1') : r.value.byteLength);
        return r;
      },
      async return() {
        await it.return?.();
        return { done: true as const, value: undefined };
      },
    }),
  };
}
