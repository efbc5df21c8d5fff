// replicate(): copy a snapshot (full, or incremental from a base snapshot) from
// one image to another, possibly on another cluster. import-diff's semantics,
// made safe: the base is checked by identity, not by name; an interrupted copy
// leaves no end snapshot and resumes from a checkpoint kept on the target.
//
// The data path is native end to end (native/copy/): this file only checks,
// opens, resizes and records; nothing here runs per extent.
//
// Refusal codes (err.code):
//   ENOENT               toSnapshot (toSnapId), fromSnapshot or diffFromSnapshot missing on the source; fromSnapshot missing on
//                        the target (fromSnapId: no target snapshot recorded as its copy); target
//                        image missing and no `create` given
//   ENOTSUP              fromSnapId (without diffFromSnapshot), and the running librbd has no rbd_diff_iterate3
//   ERR_ANCHOR_AFTER_BASE diffFromSnapshot was taken after the base (snapshot ids only grow)
//   ERR_WRONG_BASE       target's fromSnapshot has no recorded identity, or it is a copy of another
//                        image/cluster/snapshot (and the source's fromSnapshot is no recorded copy
//                        of the target's either: that reverse proof is accepted after a failback)
//   ERR_TARGET_CHANGED   target head differs from its fromSnapshot (data or size) — pass force to overwrite
//   EEXIST               toSnapshot already exists on the target (unless it is this copy's own, its
//                        last bookkeeping step lost: then that step is finished, resumed: true)
//   EBUSY                another replicate into the same target is running (this process or another)
//   ERR_VERIFY_MISMATCH  verify found different data; err.offset is the first differing chunk's offset
//   ABORT_ERR            the signal aborted the copy (target stays resumable)
import { native, type NativeCopyResult } from '../../binding/index.js';
import { codedError } from '../../core/errors.js';
import type { Image } from '../../core/image.js';
import { findCopyOf, identityKey, parseIdentity, readIdentity, sameSource, sourceIdentity, sourceIdentityById, type SnapshotIdentity } from '../identity.js';
import { requireDiffIterate3 } from '../../core/librbd.js';
import { SNAP_CREATE_SKIP_QUIESCE } from '../../core/snapshot.js';
import { kHandle, kTrack, kOnClose, kSendRecords } from '../../core/internal.js';
import { checkReplicateOptions, type ReplicateOptions, type ReplicateResult } from './options.js';
import { CHECKPOINT_KEY, checkpointPrefix, parseCheckpoint } from './checkpoint.js';
import { checkBase, discardedChanges, lockTarget, openTarget, releaseTarget, reserveTarget, settled, snapshotWithRecords, targetChanges, updateRecords } from './target.js';

export type { ReplicateOptions, ReplicateResult, ReplicateProgress, ReplicateTargetSpec } from './options.js';

const TRACE = process.env.RBD_STREAM_TRACE_REPLICATE === '1';
let traceT = 0;
const trace = (what: string) => {
  if (!TRACE) return;
  const now = performance.now();
  process.stderr.write(`[replicate] ${what} +${(now - traceT).toFixed(1)}ms\n`);
  traceT = now;
};

export async function replicate(options: ReplicateOptions): Promise<ReplicateResult> {
  const o = checkReplicateOptions(options);
  const { source, toSnap, fromSnapId, toSnapId, diffFrom, concurrency, chunkSize, inflightBytes, bandwidth, verify, force, signal, checkpointMs, enumeration, readGap, pretouch, objectWrites, writeGap } = o;
  // The target's base snapshot; with fromSnapId, found on the target by recorded identity below.
  let fromSnap = o.fromSnap;
  signal?.throwIfAborted();
  // With an anchor the diff is enumerated from its name: no by-id diff needed.
  if (fromSnapId !== undefined && diffFrom === undefined) requireDiffIterate3({ operation: 'replicate', pool: source.pool.name, image: source.name });

  const started = performance.now();
  traceT = started;
  // Source side: identities of the snapshots (ENOENT when missing).
  const [toId, fromId, anchorId, srcSnaps] = await Promise.all([
    toSnapId !== undefined ? sourceIdentityById(source, toSnapId) : sourceIdentity(source, toSnap),
    fromSnapId !== undefined ? sourceIdentityById(source, fromSnapId) : fromSnap === undefined ? null : sourceIdentity(source, fromSnap),
    diffFrom === undefined ? undefined : sourceIdentity(source, diffFrom),
    source.listSnapshots({ allNamespaces: true }),
  ]);
  // Snapshot ids only grow: an anchor taken after the base misses changes made between them.
  if (anchorId && fromId && anchorId.snapId > fromId.snapId) {
    throw codedError('ERR_ANCHOR_AFTER_BASE', `diffFromSnapshot '${diffFrom}' (id ${anchorId.snapId}) of '${source.pool.spec}/${source.name}' is newer than the base '${fromId.snapName}' (id ${fromId.snapId})`, {
      snapshot: diffFrom, pool: source.pool.name, image: source.name,
    });
  }
  const size = srcSnaps.find((s) => s.id === toId.snapId)!.size;
  trace('source identities');

  // Source opened at toSnapshot, our own handle (read-only; a live client keeps its lock), while the
  // target opens: on a far target the source's round trips are then free.
  const srcSnapOpening = source.pool.openImage(source.name, { snapshot: { id: toId.snapId }, readOnly: true });
  srcSnapOpening.catch(() => {}); // observed where it is used, or closed below
  const closeSrcSnap = () => srcSnapOpening.then((i) => i.close(), () => undefined);
  // Target: open (or create) it.
  let opened: Awaited<ReturnType<typeof openTarget>>;
  try {
    opened = await openTarget(
      o.targetSpec, o.target as Image, source, fromSnapId !== undefined ? `copy of source snapshot id ${fromSnapId}` : fromSnap, size,
    );
  } catch (e) {
    await closeSrcSnap();
    throw e;
  }
  const { target, created } = opened;
  trace('open target');

  let srcSnapImage: Image | undefined;
  let jobEnded: Promise<void> | undefined;
  let extra: Float64Array | undefined;
  let busyKey: string | undefined;
  let failure: unknown;
  let bindOnClose: [Record<string, string>, string[]] | undefined;
  try {
    const { stat: tst, key } = await reserveTarget(target);
    busyKey = key;
    trace('reserve');
    await lockTarget(target, tst);
    trace('lock');
    if (fromSnapId !== undefined) {
      fromSnap = await findCopyOf(target, fromId!);
      if (fromSnap === undefined) {
        throw codedError('ENOENT', `no snapshot of target '${target.pool.spec}/${target.name}' is a recorded copy of source snapshot id ${fromSnapId} ('${fromId!.snapName}')`, { errno: -2 });
      }
    }

    // The reads the checks need, all at once (each is a round trip to the target): snapshots, a
    // checkpoint of an interrupted run, the base's recorded identity, and the target's own changes
    // since the base (read ahead; used unless this resumes our own run unforced).
    const changes = fromSnap === undefined ? undefined : settled(targetChanges(target, fromSnap, force));
    // A full copy into a target it created, still without snapshots (librbd's list, no round trip):
    // its first checkpoint is written at once, guarded to apply only while no checkpoint is set — the
    // case in which the read below would find none and write the same. One round trip instead of a
    // read and then the write. A checkpoint already there (another copy into this name between our
    // create and our lock): nothing written, and the reads decide as for any target.
    const createdSnaps = created && fromSnap === undefined ? await target.listSnapshots({ allNamespaces: true }) : undefined;
    const firstCheckpoint = createdSnaps?.length === 0 && tst.size === size &&
      await updateRecords(target, { [CHECKPOINT_KEY]: `${checkpointPrefix(fromId, toId, true)}0}` }, [], [CHECKPOINT_KEY]);
    const [allSnaps, cpRaw, baseRecord] = firstCheckpoint ? [createdSnaps!, undefined, undefined] : await Promise.all([
      target.listSnapshots({ allNamespaces: true }),
      target.getMetadata(CHECKPOINT_KEY),
      fromSnap === undefined ? undefined : readIdentity(target, fromSnap),
    ]);
    trace(firstCheckpoint ? 'first checkpoint' : 'target reads');
    const tsnaps = allSnaps.filter((s) => s.namespace === 'user');
    // A checkpoint from an interrupted run of this same copy?
    const cp = parseCheckpoint(cpRaw);
    const sameFrom = cp !== undefined && (cp.from === null ? fromId === null : sameSource(cp.from, fromId ?? undefined));
    const matching = sameFrom && sameSource(cp!.to, toId);
    // Our own interrupted copy from this base that found its snapshot removed under it (its checkpoint
    // says so): its writes are the head's changes, and are redone. Otherwise the head may have been
    // written since (B used after a failover, then a sync resumed by mistake; the snapshot may be gone
    // by then for other reasons): refused.
    const toGone = cp !== undefined && !matching && cp.toRemoved === true && sameSource(cp.to, { ...toId, snapId: cp.to.snapId }) && !srcSnaps.some((s) => s.id === cp.to.snapId);
    const existing = tsnaps.find((s) => s.name === toSnap);
    if (existing) {
      // Our own finished copy whose last step was lost (e.g. the snapshot create timed out while an
      // OSD restarted, yet was applied): this copy's checkpoint is still there and the identity,
      // recorded before the snapshot, names this source snapshot but is not yet bound to a target
      // snapshot id. Bind it and drop the checkpoint instead of refusing our own work.
      // Or a finished copy of this very snapshot, bound to it: the run that made it may still have
      // reported a failure (its binding timed out, yet the OSD applied it), so a retry succeeds
      // with nothing to do. Any other snapshot of that name is refused.
      const rec = await target.getMetadata(identityKey(toSnap));
      const parsed = rec === undefined ? undefined : (parseIdentity(rec) as (SnapshotIdentity & { targetSnapId?: number }) | undefined);
      const ours = parsed !== undefined && sameSource(parsed, toId);
      const done = ours && parsed.targetSnapId === existing.id;
      if (!done && !(ours && matching && parsed.targetSnapId === undefined)) {
        throw codedError('EEXIST', `snapshot '${toSnap}' already exists on target '${target.pool.spec}/${target.name}'${ours ? '' : ' and is not a recorded copy of this source snapshot'}`, { errno: -17, snapshot: toSnap });
      }
      if (!done) await updateRecords(target, { [identityKey(toSnap)]: JSON.stringify({ ...toId, targetSnapId: existing.id }) }, [CHECKPOINT_KEY]);
      trace(done ? 'already copied' : 'finish an interrupted last step');
      return {
        bytesRead: 0, bytesWritten: 0, bytesZeroed: 0, extents: 0,
        seconds: (performance.now() - started) / 1000, dataSeconds: 0, peakInflightBytes: 0,
        resumed: !done,
        ...(done ? { alreadyCopied: true as const } : {}),
        snapshot: toId,
        ...(fromSnap !== undefined ? { base: fromSnap } : {}),
      };
    }

    if (fromSnap !== undefined) {
      const reverseOf = fromSnap;
      extra = await checkBase({
        target, tst, tsnaps, fromSnap, fromId: fromId!, force, matching, ownFromBase: sameFrom && toGone, record: baseRecord, changes: changes!,
        sourceRecord: fromSnapId === undefined ? () => readIdentity(source, reverseOf) : undefined,
      });
    }

    trace('check base');
    const fresh = matching ? cp!.fresh : created;
    // (with force, extra is set above; on a resumed forced run the checkpoint's doneOffset covers it)
    const startOffset = matching ? Math.min(cp!.doneOffset, size) : 0;
    const resumed = matching && startOffset > 0;
    const cpPrefix = checkpointPrefix(fromId, toId, fresh);
    // Written before the first change to the target: a crash from there on is recognisably ours.
    // When the first change is the engine's first write, the engine writes it then: a copy that
    // changes nothing (an empty incremental) saves that round trip. An image this copy created is
    // marked at once: its source may hold only zeros (never written to a fresh target), and a
    // stopped or killed copy must still leave it recognisably ours, or a sync re-run would refuse
    // it as an unrelated image (ERR_NO_COMMON_SNAPSHOT). For any other source the round trip only
    // moves: the engine would write the same record before its first write.
    const resize = tst.size !== size;
    const checkpointFirst = !matching && (resize || created);
    if (checkpointFirst && !firstCheckpoint) await updateRecords(target, { [CHECKPOINT_KEY]: `${cpPrefix}${startOffset}}` });

    trace('checkpoint write');
    if (resize) await target.resize(size, { allowShrink: true });

    srcSnapImage = await srcSnapOpening;
    trace('open source snap');

    const total = { r: 0, w: 0, z: 0, x: 0, ms: 0, peak: 0 };
    const runJob = async (mode: 'copy' | 'verify', start: number): Promise<NativeCopyResult> => {
      let lastEmit = 0;
      const t0 = performance.now();
      const onProgress = (done: number, bytesTotal: number, extents: number) => {
        if (!o.onProgress || mode !== 'copy') return;
        const now = performance.now();
        if (now - lastEmit < 95 && done < bytesTotal) return;
        lastEmit = now;
        const secs = (now - t0) / 1000;
        o.onProgress({ bytesDone: done, bytesTotal, extentsDone: extents, rate: secs > 0 ? done / secs : 0 });
      };
      const { job, promise, ended } = native.startCopy(
        srcSnapImage![kHandle],
        target[kHandle],
        {
          mode,
          // The anchor by name (diff_iterate2); by id the source's own from-snapshot (diff_iterate3);
          // by name the same name as the target's base.
          fromSnap: diffFrom ?? fromSnapId ?? fromSnap ?? null,
          toSnapId: toId.snapId,
          size,
          startOffset: start,
          chunkSize,
          concurrency,
          inflightBytes,
          bandwidth,
          targetZeroed: fresh,
          fillGaps: fromSnap === undefined && !fresh,
          checkpointPrefix: mode === 'copy' ? cpPrefix : '',
          checkpointBeforeFirstWrite: mode === 'copy' && !matching && !checkpointFirst,
          checkpointMs,
          enumeration,
          extra,
          readGap,
          writeGap,
          pretouch,
          objectWrites,
        },
        onProgress,
      );
      jobEnded = ended;
      const onAbort = () => native.cancelCopy(job);
      signal?.addEventListener('abort', onAbort, { once: true });
      // Closing either image (or its pool/connection) stops the copy, leaving the target resumable.
      const unhookSource = srcSnapImage![kOnClose](onAbort);
      const unhookTarget = target[kOnClose](onAbort);
      try {
        return await srcSnapImage![kTrack](() => target[kTrack](() => promise));
      } finally {
        signal?.removeEventListener('abort', onAbort);
        unhookSource();
        unhookTarget();
      }
    };

    const r = await runJob('copy', startOffset);
    if (TRACE) trace(`job: ${JSON.stringify(r)}`);
    o.onJobResult?.(r);
    total.r += r.bytesRead; total.w += r.bytesWritten; total.z += r.bytesZeroed; total.x += r.extents; total.ms += r.enumerateMs + r.copyMs;
    total.peak = Math.max(total.peak, r.peakInflightBytes);
    if (r.aborted) throw stopError(signal, target, srcSnapImage);

    let mismatchOffset = -1;
    if (verify) {
      if (o.beforeVerify) await o.beforeVerify(target);
      const v = await runJob('verify', 0);
      o.onJobResult?.(v);
      total.peak = Math.max(total.peak, v.peakInflightBytes);
      if (v.aborted) throw stopError(signal, target, srcSnapImage);
      mismatchOffset = v.mismatchOffset;
    }

    // A snapshot removed under the copy is no error to its readers: its reads return zeros and a
    // diff from it is empty. What was read is that snapshot's data only if it still exists now,
    // with every read done (snapshot ids are never reused). One round trip to the source. Checked
    // before a verify mismatch, which such zeros cause too.
    const live = await source[kTrack](() => native.snapshotIds(source[kHandle]));
    for (const s of [toId, fromId, anchorId]) {
      if (s && !live.includes(s.snapId)) {
        // This copy's checkpoint says its snapshot went under it: only then may the next copy from
        // this base redo these writes (toGone), not when it goes later, after the head may have been
        // written. (A copy that wrote nothing has no checkpoint of its own: nothing to redo.)
        const cur = s === toId ? await target.getMetadata(CHECKPOINT_KEY) : undefined;
        const parsed = cur?.startsWith(cpPrefix) ? parseCheckpoint(cur) : undefined;
        if (parsed) await updateRecords(target, { [CHECKPOINT_KEY]: JSON.stringify({ ...parsed, toRemoved: true }) });
        throw codedError('ENOENT', `source snapshot '${s.snapName}' (id ${s.snapId}) of '${source.pool.spec}/${source.name}' was removed during the copy (what was read from it is not its data); the target '${target.pool.spec}/${target.name}' was not snapshotted`, {
          errno: -2, snapshot: s.snapName, pool: source.pool.name, image: source.name,
        });
      }
    }
    trace('source snapshots still there');
    if (mismatchOffset >= 0) {
      throw codedError('ERR_VERIFY_MISMATCH', `data differs between source '${source.pool.spec}/${source.name}@${toSnap}' and target '${target.pool.spec}/${target.name}' at offset ${mismatchOffset}`, { offset: mismatchOffset });
    }

    // Every write was FUA; the flush is for anything librbd still holds (nothing written: no round trip).
    if (total.w + total.z > 0) await target.flush();
    trace('flush');
    // The identity first (a crash right after the snapshot still leaves it recorded), with the
    // checkpoint saying the copy is complete (a copy that wrote nothing has none yet: a lost
    // snapshot step is then still recognisably ours); then the snapshot; then the record bound to
    // that snapshot's id (a later same-named snapshot made by hand won't match) with the
    // checkpoint removed, in one op. The first record rides with the create (sent just before it,
    // applied first by the header's OSD): one round trip less.
    // The ids listed above (all namespaces, under our lock; the copy made none) spare the create a
    // read of them: it finds the new id without librbd's refresh. No quiesce round trips while we
    // hold the exclusive lock: no other client can write, so there is nothing to quiesce.
    const flags = tst.features.includes('exclusive-lock') ? SNAP_CREATE_SKIP_QUIESCE : 0;
    const identity = { [identityKey(toSnap)]: JSON.stringify(toId), [CHECKPOINT_KEY]: `${cpPrefix}${size}}` };
    if (o.beforeTargetSnapshot) await o.beforeTargetSnapshot(target);
    const madeId = await snapshotWithRecords(target, toSnap, allSnaps.map((s) => s.id), flags, identity);
    trace('record identity, create snapshot');
    if (o.afterTargetSnapshot) await o.afterTargetSnapshot(target);
    // Sent ahead of the close below (before its lock release, in order on the header); its failure
    // fails the copy, which a re-run then finishes as a lost last step.
    bindOnClose = [{ [identityKey(toSnap)]: JSON.stringify({ ...toId, targetSnapId: madeId }) }, [CHECKPOINT_KEY]];
    return {
      bytesRead: total.r,
      bytesWritten: total.w,
      bytesZeroed: total.z,
      extents: total.x,
      seconds: (performance.now() - started) / 1000,
      dataSeconds: total.ms / 1000,
      peakInflightBytes: total.peak,
      resumed,
      snapshot: toId,
      ...(fromSnap !== undefined ? { base: fromSnap } : {}),
      ...(fromSnap !== undefined && force ? { discarded: discardedChanges(extra) } : {}),
    };
  } catch (e) {
    failure = e;
    throw e;
  } finally {
    // close() also releases the exclusive lock taken above (once a job that failed early has
    // drained: it holds the images until then).
    const bound = bindOnClose ? settled(target[kSendRecords](...bindOnClose)) : undefined;
    const targetClosed = target.close();
    // The binding's own reply decides: on a hung target it fails after one op timeout, and the
    // close, which waits out several, goes on after the rejection.
    const binding = await bound;
    await releaseTarget(busyKey, Promise.allSettled([jobEnded, closeSrcSnap(), targetClosed]), binding?.ok === false ? binding.error : failure);
    trace(bindOnClose ? 'bind identity, remove checkpoint, close' : 'close');
    if (binding?.ok === false) throw binding.error;
    // (Settled above: this only reads its outcome.)
    if (bindOnClose) await targetClosed;
  }
}

/** Why a job stopped early: a closed handle, or the caller's signal. */
function stopError(signal: AbortSignal | undefined, target: Image, source: Image): Error {
  if (target.closed || source.closed) {
    return codedError('ERR_CLOSED', `replicate into '${target.pool.spec}/${target.name}' stopped: an image or its connection was closed (re-run to resume)`);
  }
  return abortError(signal, target);
}

function abortError(signal: AbortSignal | undefined, target: Image): Error {
  const reason = signal?.reason;
  const e = codedError('ABORT_ERR', `replicate into '${target.pool.spec}/${target.name}' aborted (re-run to resume)`, { cause: reason });
  e.name = 'AbortError';
  return e;
}
