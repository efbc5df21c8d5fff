// The `rbd export-diff` stream format: encoder helpers and an incremental parser.
//
// v1: banner `rbd diff v1\n`, then records by one-byte tag:
//   'f' from-snap, 't' to-snap (le32 length + name), 's' size (le64),
//   'w' data (le64 offset, le64 length, bytes), 'z' zero (le64 offset, le64 length), 'e' end.
// v2: banner `rbd diff v2\n`; every tag except 'e' is followed by a le64 record length, and
//   'p' (to-snap protected, one byte) may appear. Its payload is always one byte (rbd's importer
//   reads one byte whatever the length says), but the record length rbd writes depends on the
//   release: 8 up to Pacific (librbd 1.16), 1 from Quincy (librbd 1.17, ceph PR #43907). We write
//   what the running release's rbd writes (protectRecordLength) and accept both.
// Pacific's `rbd import-diff` accepts v1 only; v2 diffs are what `rbd export/import
// --export-format 2` embed in their image stream (see imageV2Container in the tests).
import { codedError, type RbdError, type RbdErrorCode } from '../core/errors.js';

export type DiffVersion = 1 | 2;

export const DIFF_BANNER_V1 = 'rbd diff v1\n';
export const DIFF_BANNER_V2 = 'rbd diff v2\n';
const BANNER_LEN = DIFF_BANNER_V1.length;
/** rbd refuses snapshot names longer than this in a diff stream. */
export const MAX_SNAP_NAME = 4096;

export const TAG = {
  from: 0x66, // 'f'
  to: 0x74, // 't'
  size: 0x73, // 's'
  protect: 0x70, // 'p'
  write: 0x77, // 'w'
  zero: 0x7a, // 'z'
  end: 0x65, // 'e'
} as const;

// --- encoding ---------------------------------------------------------------

function u64(n: number): Buffer {
  const b = Buffer.allocUnsafe(8);
  b.writeBigUInt64LE(BigInt(n));
  return b;
}

export function encodeBanner(v: DiffVersion): Buffer {
  return Buffer.from(v === 1 ? DIFF_BANNER_V1 : DIFF_BANNER_V2, 'latin1');
}

export function encodeName(v: DiffVersion, tag: number, name: string): Buffer {
  const nb = Buffer.from(name, 'utf8');
  const head = Buffer.allocUnsafe(v === 2 ? 13 : 5);
  head[0] = tag;
  let o = 1;
  if (v === 2) {
    head.writeBigUInt64LE(BigInt(4 + nb.length), 1);
    o = 9;
  }
  head.writeUInt32LE(nb.length, o);
  return Buffer.concat([head, nb]);
}

export function encodeSize(v: DiffVersion, size: number): Buffer {
  return Buffer.concat([Buffer.of(TAG.size), ...(v === 2 ? [u64(8)] : []), u64(size)]);
}

/** The v2 'p' record lengths rbd has written: 8 up to Pacific, 1 from Quincy. */
export type ProtectRecordLength = 1 | 8;

/**
 * The 'p' record length the rbd CLI of a librbd version ('1.16.0') writes: 8 up to Pacific
 * (librbd 1.16), 1 from Quincy (1.17) on, where Ceph corrected it (tracker 53243).
 */
export function protectRecordLength(librbdVersion: string): ProtectRecordLength {
  const m = /^(\d+)\.(\d+)/.exec(librbdVersion);
  if (!m) throw new RangeError(`librbd version must look like '1.16.0', got ${JSON.stringify(librbdVersion)}`);
  const [major, minor] = [Number(m[1]), Number(m[2])];
  return major > 1 || (major === 1 && minor >= 17) ? 1 : 8;
}

/** v2 only: the 'p' record, a one-byte payload under the given record length (see protectRecordLength). */
export function encodeProtect(isProtected: boolean, recordLength: ProtectRecordLength): Buffer {
  if (recordLength !== 1 && recordLength !== 8) throw new RangeError(`'p' record length must be 1 or 8, got ${String(recordLength)}`);
  return Buffer.concat([Buffer.of(TAG.protect), u64(recordLength), Buffer.of(isProtected ? 1 : 0)]);
}

/** The record head of a 'w' (followed by `length` data bytes) or a whole 'z' record. */
export function encodeExtentHead(v: DiffVersion, zero: boolean, offset: number, length: number): Buffer {
  const b = Buffer.allocUnsafe(v === 2 ? 25 : 17);
  b[0] = zero ? TAG.zero : TAG.write;
  let o = 1;
  if (v === 2) {
    b.writeBigUInt64LE(BigInt(zero ? 16 : 16 + length), 1);
    o = 9;
  }
  b.writeBigUInt64LE(BigInt(offset), o);
  b.writeBigUInt64LE(BigInt(length), o + 8);
  return b;
}

export const END_RECORD = Buffer.of(TAG.end);

// --- parsing ----------------------------------------------------------------

export type DiffEvent =
  | { type: 'banner'; version: DiffVersion }
  | { type: 'from'; name: string }
  | { type: 'to'; name: string }
  | { type: 'protect'; protected: boolean }
  | { type: 'size'; size: number }
  /** A 'w' record; its bytes follow as 'data' events in order. */
  | { type: 'write'; offset: number; length: number }
  | { type: 'data'; offset: number; data: Buffer }
  | { type: 'zero'; offset: number; length: number }
  | { type: 'end' };

/** Anything that yields byte chunks: a Node Readable, an async generator, an array of Buffers. */
export type ByteSource = AsyncIterable<Uint8Array | string> | Iterable<Uint8Array>;

function corrupt(code: RbdErrorCode, message: string, at: number): RbdError {
  return codedError(code, `${message} (at stream byte ${at})`, { operation: 'parse rbd diff stream', position: at });
}

/** Pulls exact byte counts from a chunk iterator without copying large payloads. */
class ByteReader {
  private chunk: Buffer = Buffer.alloc(0);
  private pos = 0;
  private done = false;
  /** Bytes consumed so far. */
  consumed = 0;

  constructor(private readonly it: AsyncIterator<Uint8Array | string> | Iterator<Uint8Array>) {}

  private async fill(): Promise<boolean> {
    while (this.pos >= this.chunk.length) {
      if (this.done) return false;
      const r = await this.it.next();
      if (r.done) {
        this.done = true;
        return false;
      }
      const v = r.value;
      this.chunk = typeof v === 'string' ? Buffer.from(v, 'latin1') : Buffer.isBuffer(v) ? v : Buffer.from(v.buffer, v.byteOffset, v.byteLength);
      this.pos = 0;
    }
    return true;
  }

  /** Up to `max` bytes (at least one), or undefined at end of stream. */
  async some(max: number): Promise<Buffer | undefined> {
    if (!(await this.fill())) return undefined;
    const n = Math.min(max, this.chunk.length - this.pos);
    const out = this.chunk.subarray(this.pos, this.pos + n);
    this.pos += n;
    this.consumed += n;
    return out;
  }

  /** Exactly n bytes, or undefined if the stream ends first (`got` tells how many were there). */
  async exact(n: number): Promise<Buffer | undefined> {
    if (this.chunk.length - this.pos >= n) {
      const out = this.chunk.subarray(this.pos, this.pos + n);
      this.pos += n;
      this.consumed += n;
      return out;
    }
    const parts: Buffer[] = [];
    let got = 0;
    while (got < n) {
      const b = await this.some(n - got);
      if (!b) return undefined;
      parts.push(b);
      got += b.length;
    }
    return Buffer.concat(parts, n);
  }
}

function readU64(b: Buffer, o: number, what: string, at: number): number {
  const v = b.readBigUInt64LE(o);
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw corrupt('ERR_DIFF_RANGE', `${what} ${v} is beyond 2^53`, at);
  return Number(v);
}

export interface ParseOptions {
  /** Largest 'data' event (default 4 MiB); payloads are passed on as they arrive, never buffered whole. */
  maxChunk?: number;
  /** Size to check extents against before an 's' record is seen (e.g. the target's current size). */
  initialSize?: number;
}

function iteratorOf(source: ByteSource): AsyncIterator<Uint8Array | string> | Iterator<Uint8Array> {
  const s = source as { iterator?: (o: { destroyOnReturn: boolean }) => AsyncIterator<Uint8Array> };
  // A Node Readable: stop at 'e' without destroying it (e.g. stdin, or a stream with trailing data).
  if (typeof s.iterator === 'function') return s.iterator({ destroyOnReturn: false });
  if (Symbol.asyncIterator in (source as object)) return (source as AsyncIterable<Uint8Array>)[Symbol.asyncIterator]();
  if (Symbol.iterator in (source as object)) return (source as Iterable<Uint8Array>)[Symbol.iterator]();
  throw new TypeError('input must be a Readable or an (async) iterable of Buffers');
}

/**
 * Parses one diff stream up to and including its 'e' record (bytes after it are not read).
 * Throws coded errors: ERR_DIFF_BANNER, ERR_DIFF_TRUNCATED, ERR_DIFF_UNKNOWN_TAG,
 * ERR_DIFF_RANGE (extent past the image size or past 2^53), ERR_DIFF_CORRUPT (inconsistent records).
 */
export async function* parseDiff(source: ByteSource, options: ParseOptions = {}): AsyncGenerator<DiffEvent> {
  const maxChunk = options.maxChunk ?? 4 << 20;
  const it = iteratorOf(source);
  const r = new ByteReader(it);
  let finished = false;
  try {
    const banner = await r.exact(BANNER_LEN);
    if (!banner) throw corrupt('ERR_DIFF_BANNER', 'not an rbd diff stream: shorter than the banner', r.consumed);
    const text = banner.toString('latin1');
    let version: DiffVersion;
    if (text === DIFF_BANNER_V1) version = 1;
    else if (text === DIFF_BANNER_V2) version = 2;
    else throw corrupt('ERR_DIFF_BANNER', `bad banner ${JSON.stringify(text)} (expected "rbd diff v1\\n" or "rbd diff v2\\n")`, 0);
    yield { type: 'banner', version };

    let size = options.initialSize;
    let sawData = false;
    const need = async (n: number, what: string, at: number) => {
      const b = await r.exact(n);
      if (!b) throw corrupt('ERR_DIFF_TRUNCATED', `stream ends inside ${what}`, at);
      return b;
    };
    const seen = new Set<number>();
    for (;;) {
      const at = r.consumed;
      const tb = await r.exact(1);
      if (!tb) throw corrupt('ERR_DIFF_TRUNCATED', "stream ends without the 'e' end record", at);
      const tag = tb[0];
      if (tag === TAG.end) {
        finished = true;
        yield { type: 'end' };
        return;
      }
      const known = tag === TAG.from || tag === TAG.to || tag === TAG.size || tag === TAG.write || tag === TAG.zero || (version === 2 && tag === TAG.protect);
      if (!known) {
        // rbd skips unknown v2 records; we refuse them, as an unknown record may change what the image means.
        throw corrupt('ERR_DIFF_UNKNOWN_TAG', `unknown record tag 0x${tag.toString(16).padStart(2, '0')} in a v${version} diff`, at);
      }
      const what = `record '${String.fromCharCode(tag)}'`;
      let recLen: number | undefined;
      if (version === 2) recLen = readU64(await need(8, what, at), 0, `${what} length`, at);
      const isHeader = tag === TAG.from || tag === TAG.to || tag === TAG.size || tag === TAG.protect;
      if (isHeader) {
        if (sawData) throw corrupt('ERR_DIFF_CORRUPT', `${what} after data records`, at);
        if (seen.has(tag)) throw corrupt('ERR_DIFF_CORRUPT', `duplicate ${what}`, at);
        seen.add(tag);
      }
      switch (tag) {
        case TAG.from:
        case TAG.to: {
          const n = (await need(4, what, at)).readUInt32LE(0);
          if (n === 0 || n > MAX_SNAP_NAME) throw corrupt('ERR_DIFF_CORRUPT', `${what}: snapshot name length ${n} outside 1..${MAX_SNAP_NAME}`, at);
          if (recLen !== undefined && recLen !== 4 + n) throw corrupt('ERR_DIFF_CORRUPT', `${what}: record length ${recLen} != ${4 + n}`, at);
          const name = (await need(n, what, at)).toString('utf8');
          if (name.includes('\0') || name.includes('/') || name.includes('@')) {
            throw corrupt('ERR_DIFF_CORRUPT', `${what}: invalid snapshot name ${JSON.stringify(name)}`, at);
          }
          yield tag === TAG.from ? { type: 'from', name } : { type: 'to', name };
          break;
        }
        case TAG.protect: {
          if (recLen !== 8 && recLen !== 1) throw corrupt('ERR_DIFF_CORRUPT', `${what}: record length ${recLen} (expected 8 or 1)`, at);
          const b = (await need(1, what, at))[0];
          if (b > 1) throw corrupt('ERR_DIFF_CORRUPT', `${what}: protection byte ${b}`, at);
          yield { type: 'protect', protected: b === 1 };
          break;
        }
        case TAG.size: {
          if (recLen !== undefined && recLen !== 8) throw corrupt('ERR_DIFF_CORRUPT', `${what}: record length ${recLen} != 8`, at);
          size = readU64(await need(8, what, at), 0, 'image size', at);
          yield { type: 'size', size };
          break;
        }
        case TAG.write:
        case TAG.zero: {
          sawData = true;
          const h = await need(16, what, at);
          const offset = readU64(h, 0, `${what} offset`, at);
          const length = readU64(h, 8, `${what} length`, at);
          if (recLen !== undefined && recLen !== (tag === TAG.write ? 16 + length : 16)) {
            throw corrupt('ERR_DIFF_CORRUPT', `${what}: record length ${recLen} does not match extent length ${length}`, at);
          }
          if (offset + length > Number.MAX_SAFE_INTEGER || (size !== undefined && offset + length > size)) {
            throw corrupt('ERR_DIFF_RANGE', `${what} [${offset}, +${length}) is past the image size ${size}`, at);
          }
          if (tag === TAG.zero) {
            yield { type: 'zero', offset, length };
            break;
          }
          yield { type: 'write', offset, length };
          let done = 0;
          while (done < length) {
            const b = await r.some(Math.min(maxChunk, length - done));
            if (!b) throw corrupt('ERR_DIFF_TRUNCATED', `stream ends inside the data of ${what} [${offset}, +${length}) after ${done} bytes`, r.consumed);
            yield { type: 'data', offset: offset + done, data: b };
            done += b.length;
          }
          break;
        }
      }
    }
  } finally {
    // Stopped early (error or consumer break): let a generator source clean up. A Readable
    // iterated with destroyOnReturn:false stays open either way.
    try {
      await it.return?.();
    } catch (e) {
      if (finished) throw e;
    }
  }
}

export interface DiffSummary {
  version: DiffVersion;
  fromSnapshot?: string;
  toSnapshot?: string;
  /** v2 'p' record, when present. */
  protected?: boolean;
  size?: number;
  dataExtents: number;
  zeroExtents: number;
  dataBytes: number;
  zeroBytes: number;
  /** Stream length through the 'e' record. */
  streamBytes: number;
}

/** Reads a whole diff stream and describes it without applying anything. */
export async function inspectDiff(input: ByteSource, options: { signal?: AbortSignal } = {}): Promise<DiffSummary> {
  const s: DiffSummary = { version: 1, dataExtents: 0, zeroExtents: 0, dataBytes: 0, zeroBytes: 0, streamBytes: 0 };
  for await (const ev of parseDiff(input, { maxChunk: 16 << 20 })) {
    options.signal?.throwIfAborted();
    switch (ev.type) {
      case 'banner': s.version = ev.version; break;
      case 'from': s.fromSnapshot = ev.name; break;
      case 'to': s.toSnapshot = ev.name; break;
      case 'protect': s.protected = ev.protected; break;
      case 'size': s.size = ev.size; break;
      case 'write': s.dataExtents++; s.dataBytes += ev.length; break;
      case 'zero': s.zeroExtents++; s.zeroBytes += ev.length; break;
      case 'end': break;
    }
  }
  s.streamBytes = headerBytes(s) + s.dataBytes;
  return s;
}

/** Exact stream length implied by a summary (banner through 'e'). */
function headerBytes(s: DiffSummary): number {
  const v2 = s.version === 2 ? 8 : 0;
  let n = BANNER_LEN + 1; // banner + 'e'
  if (s.fromSnapshot !== undefined) n += 1 + v2 + 4 + Buffer.byteLength(s.fromSnapshot);
  if (s.toSnapshot !== undefined) n += 1 + v2 + 4 + Buffer.byteLength(s.toSnapshot);
  if (s.protected !== undefined) n += 1 + v2 + 1;
  if (s.size !== undefined) n += 1 + v2 + 8;
  n += (s.dataExtents + s.zeroExtents) * (1 + v2 + 16);
  return n;
}
