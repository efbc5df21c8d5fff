// importDiff: an `rbd export-diff` stream (ours or rbd's) applied to an image, with import-diff's checks.
import { codedError, type RbdErrorCode } from '../core/errors.js';
import { checkBool, checkOptions, checkSignal, checkUint, describe } from '../core/validate.js';
import { parseDiff, type ByteSource, type DiffVersion } from './diff-format.js';
import { Image } from '../core/image.js';
import { readIdentity, recordIdentity, sameSource, type SnapshotIdentity } from './identity.js';
import { isZero } from './diff-export.js';

export interface ImportDiffOptions {
  /** The diff stream: a Readable, or an (async) iterable of Buffers. */
  input: ByteSource;
  /** The image to apply it to, open for writing at its head. */
  target: Image;
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

function refusal(code: RbdErrorCode, errno: number, message: string, image: Image, snapshot?: string) {
  return codedError(code, message, {
    errno, operation: 'import-diff', pool: image.pool.name, namespace: image.pool.namespace || undefined, image: image.name, snapshot,
  });
}

/**
 * Applies an rbd diff stream (v1 or v2, ours or `rbd export-diff`'s) to `target` (writable), with
 * import-diff's checks: the 'f' snapshot must exist on the target (ENOENT), the 't' one must not
 * (EEXIST). Unless `force`: the target must be unchanged since the from-snapshot
 * (ERR_TARGET_CHANGED) and, when both identities are known, based on the same source snapshot
 * (ERR_WRONG_BASE). 's' resizes the target; writes are pipelined; at 'e' the to-snapshot is created
 * (and protected for a v2 'p'). Corrupt input rejects with ERR_DIFF_* codes and no to-snapshot.
 */
export async function importDiff(options: ImportDiffOptions): Promise<ImportDiffResult> {
  const o = checkOptions<ImportDiffOptions>(options, 'importDiff options', [
    'input', 'target', 'force', 'expectSource', 'recordSource', 'concurrency', 'signal', 'onProgress',
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
  const input = o.input;
  if (input === null || typeof input !== 'object') throw new TypeError(`input must be a Readable or an iterable of Buffers, got ${describe(input)}`);
  if (!(o.target instanceof Image)) throw new TypeError(`target must be an open Image, got ${describe(o.target)}`);
  const image = o.target;
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
