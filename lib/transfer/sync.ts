// syncImage / syncPool: snapshot-based replication rounds with pruning, on top of replicate().
import picomatch from 'picomatch';
import { codedError } from '../core/errors.js';
import { requireDiffIterate3 } from '../core/librbd.js';
import { checkBool, checkFromSnapId, checkImageName, checkName, checkOptions, checkSignal, checkUint, describe } from '../core/validate.js';
import { Image } from '../core/image.js';
import { Pool } from '../core/pool.js';
import { isRecordedCopy, readIdentity, sameSource, sourceIdentity, identityKey } from './identity.js';
import { replicate, type ReplicateProgress } from './replicate/run.js';
import { MAX_CONCURRENCY, checkBandwidth, checkInflightBytes, concurrencyShare, inflightShare, type DiscardedChanges } from './replicate/options.js';
import { CHECKPOINT_KEY } from './replicate/checkpoint.js';
import { heldSnapshots, takeLease, type RoundLease } from './lease.js';
import type { SnapshotInfo } from '../core/snapshot.js';
import { parseRetention, selectRetention, type RetentionPolicy } from './retention.js';

export interface SyncKeep {
  /**
   * Prefixed snapshots kept on the source: a number N (the N newest; default 3, at least 1) or a
   * retention policy such as 'latest3,hours24,days7,weeks4,months12' (see docs/sync.md).
   */
  source?: number | string;
  /** As `source`, for the target. */
  target?: number | string;
}

export interface SyncImageOptions {
  /** The source image (open; it is read at its new snapshot, never written). */
  source: Image;
  /** The target image, or where it lives / is created (name defaults to the source's). */
  target: Image | { pool: Pool; name?: string };
  /** Snapshot name prefix owned by sync (default 'rbd-sync-'). */
  prefix?: string;
  keep?: SyncKeep;
  verify?: boolean;
  /**
   * Target exists but shares no snapshot with the source: copy everything over it
   * (otherwise ERR_NO_COMMON_SNAPSHOT). Also overrides ERR_TARGET_CHANGED: the target's own changes
   * since the common snapshot are overwritten, and listed in the result's `discarded`.
   */
  force?: boolean;
  concurrency?: number;
  /** Data buffers in flight, in bytes (see ReplicateOptions.inflightBytes; default 80 MiB). */
  inflightBytes?: number;
  /**
   * Base this round on the source snapshot with this id (any namespace: e.g. a mirror snapshot, or a
   * trashed one) instead of the newest common '<prefix>*' snapshot. The target's base is the snapshot
   * recorded as its copy (see ReplicateOptions.fromSnapId). Needs rbd_diff_iterate3 (Reef 18.2.5+,
   * Squid 19.2.3+), else ENOTSUP before anything is snapshotted.
   */
  fromSnapId?: number | bigint;
  /** See ReplicateOptions.writeGap (default 0: exact writes). */
  writeGap?: number;
  /** Cap on the data sent to the target, bytes per second (see ReplicateOptions.bandwidth). */
  bandwidth?: number;
  signal?: AbortSignal;
  onProgress?: (p: SyncProgress) => void;
}

export interface SyncProgress extends ReplicateProgress {
  image: string;
  phase: 'copy';
}

export interface SyncResult {
  /** Source spec pool[/ns]/image. */
  image: string;
  target: string;
  mode: 'full' | 'incremental';
  /** The snapshot created (or resumed) on the source and now on the target. */
  snapshot: string;
  /** The common snapshot the copy was based on (incremental). */
  base?: string;
  resumed: boolean;
  bytesRead: number;
  bytesWritten: number;
  bytesZeroed: number;
  /** Whole round (snapshot, checks, copy, pruning). */
  seconds: number;
  /** The data copy alone (replicate). */
  copySeconds: number;
  /** See ReplicateResult.peakInflightBytes. */
  peakInflightBytes: number;
  verified: boolean;
  pruned: { source: string[]; target: string[] };
  /**
   * With force, on an incremental round: the target's own changes since the base that this round
   * overwrote (e.g. writes made on the original site after a failover; empty when none).
   */
  discarded?: DiscardedChanges;
}

export const DEFAULT_PREFIX = 'rbd-sync-';
const DEFAULT_KEEP = 3;

/** prefix + UTC timestamp with ms, e.g. rbd-sync-20240131T235959.123Z: names sort by time. */
export function syncSnapshotName(prefix: string, at: Date = new Date()): string {
  const iso = at.toISOString(); // 2024-01-31T23:59:59.123Z
  return prefix + iso.replace(/[-:]/g, '');
}

export function byName(a: { name: string }, b: { name: string }) {
  return a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
}

export async function prefixed(image: Image, prefix: string): Promise<SnapshotInfo[]> {
  return (await image.listSnapshots()).filter((s) => s.name.startsWith(prefix)).sort(byName);
}

/** The options every sync round checks the same way (syncImage, syncGroup). */
export interface RoundOptions {
  prefix?: string; keep?: SyncKeep; verify?: boolean; force?: boolean; concurrency?: number; inflightBytes?: number; writeGap?: number;
  bandwidth?: number;
}

/**
 * Checks a round's common options and applies their defaults. Checked here, not only by
 * replicate(): bad input must fail before the source is snapshotted.
 */
export function checkRoundOptions(o: RoundOptions) {
  const prefix = o.prefix === undefined ? DEFAULT_PREFIX : checkName(o.prefix, 'prefix', { forbid: '/@' });
  const keepO = checkOptions<SyncKeep>(o.keep, 'keep', ['source', 'target']);
  const keepSource = parseRetention(keepO.source ?? DEFAULT_KEEP, 'keep.source');
  const keepTarget = parseRetention(keepO.target ?? DEFAULT_KEEP, 'keep.target');
  const verify = checkBool(o.verify, 'verify') ?? false;
  const force = checkBool(o.force, 'force') ?? false;
  if (o.concurrency !== undefined) checkUint(o.concurrency, 'concurrency', { min: 1, max: MAX_CONCURRENCY });
  const inflightBytes = o.inflightBytes === undefined ? undefined : checkInflightBytes(o.inflightBytes);
  const bandwidth = o.bandwidth === undefined ? undefined : checkBandwidth(o.bandwidth);
  if (o.writeGap !== undefined) checkUint(o.writeGap, 'writeGap', { max: 64 << 20 });
  return { prefix, keepSource, keepTarget, verify, force, inflightBytes, bandwidth };
}

/**
 * One replication round: finds the newest snapshot (with `prefix`) present on both sides whose
 * identity recorded on the target matches the source — or, after a failback (syncing from the copy
 * back to the original), whose identity recorded on the source matches the target's — snapshots
 * the source, copies full or incrementally with replicate(), then prunes old prefixed snapshots on
 * both sides beyond `keep` — never the newest common one. A round interrupted after the source snapshot was made
 * is resumed by the next round (same snapshot, replicate's checkpoint).
 */
export async function syncImage(options: SyncImageOptions): Promise<SyncResult> {
  const o = checkOptions<SyncImageOptions>(options, 'syncImage options', [
    'source', 'target', 'prefix', 'keep', 'verify', 'force', 'concurrency', 'inflightBytes', 'fromSnapId', 'writeGap', 'bandwidth', 'signal', 'onProgress',
  ]);
  if (!(o.source instanceof Image)) throw new TypeError(`source must be an open Image, got ${describe(o.source)}`);
  const source = o.source;
  const { prefix, keepSource, keepTarget, verify, force, inflightBytes, bandwidth } = checkRoundOptions(o);
  const signal = checkSignal(o.signal);
  if (o.onProgress !== undefined && typeof o.onProgress !== 'function') throw new TypeError('onProgress must be a function');
  const fromSnapId = checkFromSnapId(o.fromSnapId, undefined);
  let targetPool: Pool;
  let targetName: string;
  let given: Image | undefined;
  if (o.target instanceof Image) {
    given = o.target;
    targetPool = given.pool;
    targetName = given.name;
  } else {
    const t = checkOptions<{ pool: Pool; name?: string }>(o.target, 'target', ['pool', 'name']);
    if (!(t.pool instanceof Pool)) throw new TypeError('target.pool must be a Pool (or pass an open Image)');
    targetPool = t.pool;
    targetName = t.name === undefined ? source.name : checkImageName(t.name, 'target.name');
  }
  signal?.throwIfAborted();
  if (fromSnapId !== undefined) requireDiffIterate3({ operation: 'sync', pool: source.pool.name, image: source.name });
  const t0 = performance.now();
  const sourceSpec = `${source.pool.spec}/${source.name}`;
  const targetSpec = `${targetPool.spec}/${targetName}`;

  let target = given;
  const exists = given !== undefined || (await targetPool.listImages()).includes(targetName);
  if (!target && exists) target = await targetPool.openImage(targetName);
  let lease: RoundLease | undefined;
  try {
    const srcSnaps = await prefixed(source, prefix);
    const tgtSnaps = target ? await prefixed(target, prefix) : [];
    const tgtByName = new Map(tgtSnaps.map((s) => [s.name, s]));

    // Newest common snapshot, by recorded identity (never by name alone): the target's is a copy of
    // the source's, or (failback: syncing back from the copy) the source's is a copy of the target's.
    let base: string | undefined;
    for (const s of fromSnapId !== undefined ? [] : [...srcSnaps].reverse()) {
      if (!tgtByName.has(s.name) || !target) continue;
      const rec = await readIdentity(target, s.name);
      if (rec && sameSource(rec, await sourceIdentity(source, s.name))) {
        base = s.name;
        break;
      }
      const reverse = await readIdentity(source, s.name);
      if (reverse && isRecordedCopy(reverse, await sourceIdentity(target, s.name), s.id)) {
        base = s.name;
        break;
      }
    }
    // Resume: the newest source snapshot after the base that an interrupted round was copying.
    let snapshot: string | undefined;
    const newest = srcSnaps[srcSnaps.length - 1];
    if (target && newest && newest.name !== base && !tgtByName.has(newest.name) && (!base || newest.name > base)) {
      const cp = await target.getMetadata(CHECKPOINT_KEY);
      if (cp) {
        try {
          const to = (JSON.parse(cp) as { to?: unknown }).to as Parameters<typeof sameSource>[0];
          if (sameSource(to, await sourceIdentity(source, newest.name))) snapshot = newest.name;
        } catch { /* unreadable checkpoint: start a new round */ }
      }
    }
    if (target && !base && !snapshot && !force && fromSnapId === undefined) {
      throw codedError('ERR_NO_COMMON_SNAPSHOT',
        `sync: target '${targetSpec}' exists but shares no '${prefix}*' snapshot with '${sourceSpec}' (pass force to overwrite it with a full copy)`,
        { image: source.name, pool: source.pool.name });
    }
    const resuming = snapshot !== undefined;
    if (!snapshot) {
      let name = syncSnapshotName(prefix);
      // Strictly after every existing one (clock steps, two rounds within a millisecond).
      const last = newest?.name;
      let bump = Date.now();
      while ((last !== undefined && name <= last) || srcSnaps.some((s) => s.name === name)) {
        bump += 1;
        name = syncSnapshotName(prefix, new Date(Math.max(bump, Date.now())));
      }
      snapshot = name;
    }
    // Before the snapshot exists: no other round's pruning may take it, or the base, from this one.
    lease = await takeLease([source], base === undefined ? [snapshot] : [base, snapshot]);
    if (!resuming) await source.createSnapshot(snapshot);

    const { features } = await source.stat();
    const r = await replicate({
      source,
      ...(fromSnapId !== undefined ? { fromSnapId } : { fromSnapshot: base }),
      toSnapshot: snapshot,
      target: target ?? { pool: targetPool, name: targetName, create: { features } }, // layout: the source's (replicate)
      verify,
      force,
      signal,
      concurrency: o.concurrency,
      inflightBytes,
      writeGap: o.writeGap,
      bandwidth,
      onProgress: o.onProgress ? (p) => o.onProgress!({ ...p, image: sourceSpec, phase: 'copy' }) : undefined,
    });

    base = r.base;
    if (!target) target = await targetPool.openImage(targetName);
    await lease.release();
    const pruned = {
      source: await prune(source, prefix, keepSource, snapshot, false),
      target: await prune(target, prefix, keepTarget, snapshot, true),
    };
    return {
      image: sourceSpec,
      target: targetSpec,
      mode: base ? 'incremental' : 'full',
      snapshot,
      ...(base ? { base } : {}),
      resumed: r.resumed,
      bytesRead: r.bytesRead,
      bytesWritten: r.bytesWritten,
      bytesZeroed: r.bytesZeroed,
      seconds: (performance.now() - t0) / 1000,
      copySeconds: r.seconds,
      peakInflightBytes: r.peakInflightBytes,
      verified: verify,
      pruned,
      ...(r.discarded ? { discarded: r.discarded } : {}),
    };
  } finally {
    await lease?.release();
    if (target && target !== given) await target.close();
  }
}

/** The time a sync snapshot stands for: the one in its name (same on both sides), else librbd's. */
export function snapTime(s: { name: string; timestamp: Date }, prefix: string): Date {
  const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})\.(\d{3})Z$/.exec(s.name.slice(prefix.length));
  return m ? new Date(Date.UTC(+m[1], +m[2] - 1, +m[3], +m[4], +m[5], +m[6], +m[7])) : s.timestamp;
}

/** Removes the prefixed snapshots `keep` does not keep, never `newestCommon`, protected ones, or those a running round holds (lease.ts). */
async function prune(image: Image, prefix: string, keep: RetentionPolicy, newestCommon: string, isTarget: boolean): Promise<string[]> {
  const snaps = await prefixed(image, prefix);
  const removed: string[] = [];
  const pruneNames = new Set(selectRetention(snaps.map((s) => ({ name: s.name, timestamp: snapTime(s, prefix) })), keep).prune);
  const excess = snaps.filter((s) => pruneNames.has(s.name));
  if (excess.length === 0) return [];
  const meta = await image.listMetadata();
  // Snapshots a round still running needs (this image is its source; this round's lease is gone).
  const held = await heldSnapshots(image, meta);
  for (const s of excess) {
    if (s.name === newestCommon || s.protected || held.has(s.name)) continue;
    await image.removeSnapshot(s.name);
    // Its identity record goes with it: the target's (a copy), or the source's after a failback.
    if (isTarget || Object.hasOwn(meta, identityKey(s.name))) await image.removeMetadata(identityKey(s.name)).catch(() => {});
    removed.push(s.name);
  }
  return removed;
}

// --- pools ----------------------------------------------------------------------------------

export interface SyncPoolOptions extends Omit<SyncImageOptions, 'source' | 'target' | 'onProgress'> {
  source: Pool;
  target: Pool;
  /** A glob ('db-*') or a list of image names; default: every image in the source pool. */
  images?: string | string[];
  /** Images synced at the same time (default 2). */
  parallel?: number;
  /**
   * Data buffers in flight, in bytes, shared by the images being copied (default 80 MiB): each of
   * the `parallel` copies gets its share, at least 1 MiB. The same for `bandwidth`.
   */
  inflightBytes?: number;
  onProgress?: (p: SyncProgress) => void;
  /** Called as each image finishes (ok or not). */
  onImage?: (r: SyncPoolImageResult) => void;
}

export type SyncPoolImageResult =
  | ({ ok: true; name: string } & SyncResult)
  | { ok: false; name: string; error: { code: string; message: string } };

export interface SyncPoolResult {
  images: SyncPoolImageResult[];
  summary: { total: number; ok: number; failed: number; bytesWritten: number; bytesZeroed: number; seconds: number };
}

/** syncImage for every (matching) image of a pool, `parallel` at a time; one failure stops nothing else. */
export async function syncPool(options: SyncPoolOptions): Promise<SyncPoolResult> {
  const o = checkOptions<SyncPoolOptions>(options, 'syncPool options', [
    'source', 'target', 'images', 'parallel', 'prefix', 'keep', 'verify', 'force', 'concurrency', 'inflightBytes', 'writeGap', 'bandwidth', 'signal', 'onProgress', 'onImage',
  ]);
  if (!(o.source instanceof Pool)) throw new TypeError('source must be a Pool');
  if (!(o.target instanceof Pool)) throw new TypeError('target must be a Pool');
  const parallel = o.parallel === undefined ? 2 : checkUint(o.parallel, 'parallel', { min: 1, max: 64 });
  if (o.concurrency !== undefined) checkUint(o.concurrency, 'concurrency', { min: 1, max: MAX_CONCURRENCY });
  const inflightBytes = o.inflightBytes === undefined ? undefined : checkInflightBytes(o.inflightBytes);
  const bandwidth = o.bandwidth === undefined ? undefined : checkBandwidth(o.bandwidth);
  if (o.writeGap !== undefined) checkUint(o.writeGap, 'writeGap', { max: 64 << 20 });
  const signal = checkSignal(o.signal);
  if (o.onImage !== undefined && typeof o.onImage !== 'function') throw new TypeError('onImage must be a function');
  const all = await o.source.listImages();
  let names: string[];
  if (o.images === undefined) names = all;
  else if (typeof o.images === 'string') {
    const match = picomatch(o.images);
    names = all.filter((n) => match(n));
  } else if (Array.isArray(o.images)) {
    names = o.images.map((n, i) => checkImageName(n, `images[${i}]`));
  } else {
    throw new TypeError(`images must be a glob or a list of names, got ${describe(o.images)}`);
  }
  const workers = Math.min(parallel, names.length);
  const t0 = performance.now();
  const results: SyncPoolImageResult[] = new Array(names.length);
  let next = 0;
  const worker = async () => {
    while (next < names.length) {
      const i = next++;
      const name = names[i];
      let r: SyncPoolImageResult;
      let src: Image | undefined;
      try {
        signal?.throwIfAborted();
        // Writable handle (snapshot creation needs one); it never writes data, so a live
        // client keeps its exclusive lock. Data is read through replicate's own snapshot handle.
        src = await o.source!.openImage(name);
        const res = await syncImage({
          source: src,
          target: { pool: o.target!, name },
          prefix: o.prefix,
          keep: o.keep,
          verify: o.verify,
          force: o.force,
          concurrency: concurrencyShare(o.concurrency, workers),
          // The pool's ops, buffers and cap shared by the copies running at once.
          inflightBytes: inflightShare(inflightBytes, workers),
          writeGap: o.writeGap,
          bandwidth: bandwidth === undefined ? undefined : Math.max(1, Math.floor(bandwidth / workers)),
          signal,
          onProgress: o.onProgress,
        });
        r = { ok: true, name, ...res };
      } catch (e) {
        const err = e as { code?: string; message?: string; name?: string };
        r = { ok: false, name, error: { code: err.code ?? err.name ?? 'ERR_UNKNOWN', message: String(err.message ?? e) } };
      } finally {
        await src?.close().catch(() => {});
      }
      results[i] = r;
      o.onImage?.(r);
    }
  };
  await Promise.all(Array.from({ length: workers }, worker));
  const ok = results.filter((r) => r.ok) as ({ ok: true } & SyncResult)[];
  return {
    images: results,
    summary: {
      total: results.length,
      ok: ok.length,
      failed: results.length - ok.length,
      bytesWritten: ok.reduce((n, r) => n + r.bytesWritten, 0),
      bytesZeroed: ok.reduce((n, r) => n + r.bytesZeroed, 0),
      seconds: (performance.now() - t0) / 1000,
    },
  };
}
