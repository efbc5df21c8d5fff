// Crash-consistency harness for consistency groups (issue 13): a writer makes dependent writes
// across two images — a data block in image 1, then, once that write is acknowledged, a commit
// record naming it in image 2 — and checkWritePair() verifies, for image 1 and image 2 as read at
// some pair of points, that every committed record's data is present. A crash-consistent pair
// (one group snapshot) always passes; independent per-image snapshots (image 1, then image 2 a
// little later) can catch a record whose data write came after image 1's point, and fail.
import { createHash } from 'node:crypto';
import type { Image, Pool } from '../../lib/index.js';

/** Block size of data blocks and records (4 KiB-aligned writes of 4 KiB are atomic in RADOS). */
export const BLOCK = 4096;
/** Slots in each ring: data block and record of `seq` live at slot seq % SLOTS of image 1 and 2. */
export const SLOTS = 256;
/** Bytes of each image the harness uses (both images must be at least this large). */
export const RING_BYTES = SLOTS * BLOCK;

const DATA_MAGIC = Buffer.from('RBDSGDAT');
const REC_MAGIC = Buffer.from('RBDSGREC');

const sha = (b: Buffer | string) => createHash('sha256').update(b).digest();

/** The data block of sequence number `seq` (seq ≥ 1): magic, seq, then bytes derived from seq. */
export function dataBlock(seq: number): Buffer {
  const b = Buffer.alloc(BLOCK);
  DATA_MAGIC.copy(b, 0);
  b.writeBigUInt64LE(BigInt(seq), 8);
  const fill = sha(`data-${seq}`);
  for (let o = 16; o < BLOCK; o += fill.length) fill.copy(b, o);
  return b;
}

export const dataOffset = (seq: number): number => (seq % SLOTS) * BLOCK;

/** The commit record of `seq`: names the data block (seq, offset, hash); checksummed itself. */
export function commitRecord(seq: number): Buffer {
  const b = Buffer.alloc(BLOCK);
  REC_MAGIC.copy(b, 0);
  b.writeBigUInt64LE(BigInt(seq), 8);
  b.writeBigUInt64LE(BigInt(dataOffset(seq)), 16);
  sha(dataBlock(seq)).copy(b, 24);
  sha(b.subarray(0, 56)).copy(b, 56);
  return b;
}

interface Record_ { seq: number; offset: number; hash: Buffer }

function parseRecord(b: Buffer): Record_ | undefined {
  if (!b.subarray(0, 8).equals(REC_MAGIC)) return undefined;
  if (!sha(b.subarray(0, 56)).equals(b.subarray(56, 88))) return undefined;
  return { seq: Number(b.readBigUInt64LE(8)), offset: Number(b.readBigUInt64LE(16)), hash: Buffer.from(b.subarray(24, 56)) };
}

export interface PairCheck {
  ok: boolean;
  /** Valid commit records found in image 2. */
  records: number;
  /** Highest committed seq found. */
  maxSeq: number;
  /** Records whose data block is missing from image 1 (neither that block nor a later one of its slot). */
  missing: { seq: number; offset: number; found: number | null }[];
  /** Torn or garbage blocks (a record or data slot that is neither empty nor valid). */
  torn: number;
}

/**
 * Every committed record's data is present: for each valid record in `ring2` (image 2's first
 * RING_BYTES), image 1's slot holds that very block (same hash), or a later block of the same slot
 * (seq + k·SLOTS, written after the record, legitimately). Pure: the caller reads the images.
 */
export function checkWritePair(ring1: Buffer, ring2: Buffer): PairCheck {
  const r: PairCheck = { ok: true, records: 0, maxSeq: 0, missing: [], torn: 0 };
  const zero = Buffer.alloc(BLOCK);
  for (let i = 0; i < SLOTS; i++) {
    const rb = ring2.subarray(i * BLOCK, (i + 1) * BLOCK);
    const rec = parseRecord(rb);
    if (!rec) {
      if (!rb.equals(zero)) r.torn++;
      continue;
    }
    r.records++;
    r.maxSeq = Math.max(r.maxSeq, rec.seq);
    const db = ring1.subarray(rec.offset, rec.offset + BLOCK);
    let found: number | null = null;
    if (db.subarray(0, 8).equals(DATA_MAGIC)) {
      found = Number(db.readBigUInt64LE(8));
      // A data block must be exactly the block of its own seq (no torn or foreign content).
      if (!db.equals(dataBlock(found))) { r.torn++; found = null; }
    } else if (!db.equals(zero)) {
      r.torn++;
    }
    const present = found !== null && (found === rec.seq ? sha(db).equals(rec.hash) : found > rec.seq && (found - rec.seq) % SLOTS === 0);
    if (!present) r.missing.push({ seq: rec.seq, offset: rec.offset, found });
  }
  r.ok = r.missing.length === 0 && r.torn === 0;
  return r;
}

/** Image `name`'s first RING_BYTES at snapshot id `snapId` (any namespace). */
export async function readRing(pool: Pool, name: string, snapId: number): Promise<Buffer> {
  const img: Image = await pool.openImage(name, { snapshot: { id: snapId }, readOnly: true });
  try {
    return await img.read(0, RING_BYTES);
  } finally {
    await img.close();
  }
}

export interface Writer {
  /** Stops the writer (it finishes its current pair) and resolves with the last committed seq. */
  stop(): Promise<number>;
  /** Kills the writer if still running (cleanup after a failed test). */
  kill(): void;
}

/** Starts the writer child (test/support/fixtures/group-writer.ts) on image1/image2; resolves once it writes. */
export async function startWriter(c: { conf: string; keyring?: string; user?: string }, pool: string, img1: string, img2: string): Promise<Writer> {
  const { spawn } = await import('node:child_process');
  const { fileURLToPath } = await import('node:url');
  const path = await import('node:path');
  const here = path.dirname(fileURLToPath(import.meta.url));
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(here, 'fixtures', 'group-writer.ts')], {
    env: { ...process.env, WRITER_CLUSTER: JSON.stringify(c), WRITER_POOL: pool, WRITER_IMG1: img1, WRITER_IMG2: img2 },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (err += d));
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  const deadline = Date.now() + 60_000;
  while (!out.includes('ready\n')) {
    if (child.exitCode !== null || Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`writer did not start: ${err}`);
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  return {
    async stop() {
      child.stdin.end('stop\n');
      const code = await exited;
      if (code !== 0) throw new Error(`writer exited ${code}: ${err}`);
      if (err) console.log(`writer: ${err.trim()}`);
      return (JSON.parse(out.trim().split('\n').pop()!) as { seq: number }).seq;
    },
    kill() {
      if (child.exitCode === null) child.kill('SIGKILL');
    },
  };
}
