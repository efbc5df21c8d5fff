// Round leases: a running sync round's snapshots are not pruned by another round.
//
// Two rounds may share a source (one image synced to two sites with the same prefix, a failback
// round started while the forward one still runs, two schedulers): one round's pruning could remove
// the base another round is diffing from, or the new snapshot it is reading. So a round records,
// on each source image it reads, the snapshots it needs and until when (an image-metadata key of
// its own, written straight to the header's omap: no exclusive lock, so a live writer keeps its
// lock); it renews the lease while it runs and removes it when it ends. Pruning, on either side,
// skips snapshots named by an unexpired lease and deletes expired ones (their round died).
//
// Not a lock: a round that takes its lease between another round's listing and its removal can
// still lose a snapshot; it then fails (ENOENT) and the next round starts from what is left.
import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import type { Image } from '../core/image.js';
import { updateRecords } from './replicate/target.js';

export const LEASE_KEY_PREFIX = 'rbd-stream.round.';
/** How long a lease outlives its last renewal: a round that died keeps its snapshots this long. */
export const LEASE_MS = 10 * 60_000;
const RENEW_MS = 60_000;

export interface LeaseRecord {
  /** Snapshot names the round needs. */
  snapshots: string[];
  /** Epoch milliseconds after which the lease no longer counts. */
  expires: number;
  host: string;
  pid: number;
}

export interface RoundLease {
  /** The metadata key (one per round). */
  key: string;
  /** Ends the lease: stops renewing and removes the records (best effort: they expire anyway). */
  release(): Promise<void>;
}

/** Records on every image that this round needs `snapshots`, renewed until release(). */
export async function takeLease(images: Image[], snapshots: string[]): Promise<RoundLease> {
  const key = LEASE_KEY_PREFIX + randomUUID();
  const record = (): string => JSON.stringify({ snapshots, expires: Date.now() + LEASE_MS, host: hostname(), pid: process.pid } satisfies LeaseRecord);
  // Every image is tried (allSettled): a failed renewal is retried next time, and it expires otherwise.
  const write = (value: string) => Promise.allSettled(images.map((i) => updateRecords(i, { [key]: value })));
  // All or none: a lease left on some images by a failed take would hold their snapshots for LEASE_MS.
  const first = await write(record());
  const failed = first.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) {
    // Every image: a write that failed (timed out) may still have been applied.
    await Promise.allSettled(images.map((i) => updateRecords(i, {}, [key])));
    throw failed.reason;
  }
  let renewing: Promise<unknown> = Promise.resolve();
  const timer = setInterval(() => { renewing = write(record()); }, RENEW_MS);
  timer.unref();
  let released: Promise<void> | undefined;
  return {
    key,
    release: () => (released ??= (async () => {
      clearInterval(timer);
      await renewing;
      await Promise.allSettled(images.map((i) => updateRecords(i, {}, [key])));
    })()),
  };
}

/**
 * From an image's metadata: the snapshot names unexpired leases hold, and the keys of expired
 * leases. A record that does not parse as a lease is neither (left alone).
 */
export function readLeases(meta: Record<string, string>, now = Date.now()): { held: Set<string>; expired: string[] } {
  const held = new Set<string>();
  const expired: string[] = [];
  for (const [k, v] of Object.entries(meta)) {
    if (!k.startsWith(LEASE_KEY_PREFIX)) continue;
    let rec: Partial<LeaseRecord>;
    try {
      rec = JSON.parse(v) as Partial<LeaseRecord>;
    } catch {
      continue;
    }
    if (typeof rec.expires !== 'number' || !Array.isArray(rec.snapshots)) continue;
    if (rec.expires <= now) expired.push(k);
    else for (const s of rec.snapshots) if (typeof s === 'string') held.add(s);
  }
  return { held, expired };
}

/**
 * The snapshots unexpired leases on the image hold (see readLeases; `meta`: its metadata, if read
 * already). Expired leases are removed (best effort).
 */
export async function heldSnapshots(image: Image, meta?: Record<string, string>): Promise<Set<string>> {
  const r = readLeases(meta ?? (await image.listMetadata()));
  if (r.expired.length > 0) await updateRecords(image, {}, r.expired).catch(() => {});
  return r.held;
}
