// Waiting for a mirror sync, and the failover / failback workflows.
import { codedError, isRbdError } from '../core/errors.js';
import { checkOptions } from '../core/validate.js';
import type { Image } from '../core/image.js';
import { kTrack } from '../core/internal.js';
import type { FailbackOptions, FailoverOptions, FailoverStep, SyncState, WaitOptions } from './types.js';
import { checkWait, poll } from './wait.js';

function latestPrimarySnapshot(snaps: Awaited<ReturnType<Image['listSnapshots']>>) {
  return snaps.filter((s) => s.mirror && (s.mirror.state === 'primary' || s.mirror.state === 'primary-demoted')).at(-1);
}

/**
 * image.mirror.waitForSync(): resolves when the peer has copied the latest primary mirror
 * snapshot (snapshot mode) or has replayed the primary's journal up to its current end (journal
 * mode). `image` is the primary image. It lives here, beside its other user (failback), and
 * reaches the image's mirroring through `image.mirror`, so this module imports no class at run time.
 */
export async function waitForMirrorSync(image: Image, options: WaitOptions = {}): Promise<SyncState> {
  const o = checkWait(options, 'waitForSync options');
  if (o.peer !== undefined && (typeof o.peer?.[kTrack] !== 'function' || o.peer.readOnly)) {
    // librbd registers no header watch for read-only opens: such a handle never sees new snapshots.
    throw new TypeError('peer must be an Image opened without readOnly (read-only handles are not notified of new snapshots)');
  }
  const what = `wait for mirror sync of '${image?.spec}'`;
  const info = await image.mirror.getInfo();
  if (info.state !== 'enabled') throw codedError('EINVAL', `${what}: mirroring is not enabled on the image`, { operation: 'wait for mirror sync' });
  if (!info.primary) throw codedError('EINVAL', `${what}: the image is not primary (pass the primary image)`, { operation: 'wait for mirror sync' });
  let last = 'unknown';
  if (info.mode === 'snapshot') {
    const snap = latestPrimarySnapshot(await image.listSnapshots({ allNamespaces: true }));
    if (!snap) throw codedError('ENOENT', `${what}: the image has no primary mirror snapshot yet (create one first)`, { operation: 'wait for mirror sync' });
    const tsSec = Math.floor(snap.timestamp.getTime() / 1000);
    await poll(o, what, async () => {
      if (o.peer) {
        const copy = (await o.peer.listSnapshots({ allNamespaces: true })).find((s) => s.mirror?.primarySnapId === snap.id);
        last = copy
          ? `snapshot ${copy.id} ${copy.mirror!.complete ? 'complete' : `copying (object ${copy.mirror!.lastCopiedObjectNumber})`}`
          : snap.mirror!.peerUuids.length === 0
            ? `primary mirror snapshot ${snap.id} lists no peers (created before this site knew its peer): create a new mirror snapshot`
            : 'not yet created on the peer';
        return copy?.mirror?.complete ? true : undefined;
      }
      const st = await image.mirror.getStatus();
      const r = st.remotes.find((s) => s.replay);
      last = st.remotes.map((s) => `${s.siteName || s.mirrorUuid}: ${s.summary} ${s.description}`).join('; ') || 'no peer status';
      const rp = r?.replay;
      return rp && r.up && rp.localSnapshotTimestamp !== undefined && rp.localSnapshotTimestamp >= tsSec && rp.replayState === 'idle'
        ? true
        : undefined;
    }, () => last);
    return { mode: 'snapshot', snapshotId: snap.id };
  }
  // Journal mode: the peer reports its replay position against the primary's; wait for a report
  // made after we started that shows nothing left to replay.
  const since = Math.floor(Date.now() / 1000);
  await image.flush();
  const behind = await poll(o, what, async () => {
    const st = await image.mirror.getStatus();
    last = st.remotes.map((s) => `${s.siteName || s.mirrorUuid}: ${s.summary} ${s.rawDescription}`).join('; ') || 'no peer status';
    const r = st.remotes.find((s) => s.replay);
    const rp = r?.replay;
    if (!r || !rp || !r.up || r.state !== 'replaying' || !r.lastUpdate) return undefined;
    if (r.lastUpdate.getTime() / 1000 < since) return undefined;
    const p = rp.primaryPosition;
    const n = rp.nonPrimaryPosition;
    const samePos = p && n && p.entryTid === n.entryTid && p.tagTid === n.tagTid && p.objectNumber === n.objectNumber;
    return rp.entriesBehindPrimary === 0 && (samePos || (!p && !n)) ? 0 : undefined;
  }, () => last);
  return { mode: 'journal', entriesBehindPrimary: behind };
}

function stepError(step: FailoverStep, image: Image, e: unknown): Error {
  const cause = e as Error & { code?: string; errno?: number };
  const err = codedError((cause?.code ?? 'EIO') as Parameters<typeof codedError>[0], `failover step '${step}' on '${image.spec}' failed: ${cause?.message ?? String(e)}`, {
    step,
    errno: cause?.errno,
    cause: e,
  });
  return err;
}

/**
 * Orderly switch of the primary role: demote `primary`, wait until the demotion (and all data
 * before it) has reached `secondary`, promote `secondary`. Each step reports progress; a failure
 * is an Error with `.step` naming where it stopped.
 */
export async function failover(options: FailoverOptions): Promise<void> {
  const o = checkOptions<FailoverOptions>(options, 'failover options', ['primary', 'secondary', 'timeoutMs', 'signal', 'pollMs', 'onProgress']);
  const { primary, secondary } = o;
  if (!primary || !secondary) throw new TypeError('failover needs primary and secondary images');
  const w = checkWait({ timeoutMs: o.timeoutMs, signal: o.signal, pollMs: o.pollMs }, 'failover options');
  const progress = (step: FailoverStep, message: string) => o.onProgress?.({ step, message });
  const deadline = Date.now() + w.timeoutMs;

  progress('check', `checking ${primary.spec} and ${secondary.spec}`);
  const [pi, si] = await Promise.all([primary.mirror.getInfo(), secondary.mirror.getInfo()]).catch((e) => {
    throw stepError('check', primary, e);
  });
  if (pi.state !== 'enabled' || si.state !== 'enabled') {
    throw codedError('EINVAL', `failover step 'check': mirroring is not enabled on ${pi.state !== 'enabled' ? primary.spec : secondary.spec}`, { step: 'check' });
  }
  if (pi.globalId !== si.globalId) {
    throw codedError('EINVAL', `failover step 'check': ${primary.spec} and ${secondary.spec} are not the same mirrored image (global ids differ)`, { step: 'check' });
  }
  if (si.primary) {
    throw codedError('EEXIST', `failover step 'check': ${secondary.spec} is already primary${pi.primary ? ' (split-brain: use failback with resync)' : ''}`, { step: 'check' });
  }

  if (pi.primary) {
    progress('demote', `demoting ${primary.spec}`);
    try {
      await primary.mirror.demote();
    } catch (e) {
      throw stepError('demote', primary, e);
    }
  }

  progress('wait', `waiting for ${secondary.spec} to receive the demotion`);
  // A non-forced promote succeeds only once the demotion (and everything before it) has been
  // replayed on the secondary; until then librbd answers EBUSY. That is the exact condition.
  progress('promote', `promoting ${secondary.spec}`);
  try {
    await poll(
      { timeoutMs: Math.max(1, deadline - Date.now()), pollMs: w.pollMs, signal: w.signal },
      `promote '${secondary.spec}' after demotion of '${primary.spec}'`,
      async () => {
        try {
          await secondary.mirror.promote();
          return true;
        } catch (e) {
          // EBUSY: demotion not replicated yet; EROFS: rbd-mirror still holds the image's
          // lock while it finishes replaying. Both clear by themselves.
          if (isRbdError(e, 'EBUSY') || isRbdError(e, 'EROFS')) return undefined;
          throw e;
        }
      },
      () => 'demotion not yet replicated (promote answers EBUSY)',
    );
  } catch (e) {
    throw stepError((e as { code?: string }).code === 'ETIMEDOUT' ? 'wait' : 'promote', secondary, e);
  }
  progress('done', `${secondary.spec} is primary, ${primary.spec} is non-primary`);
}

/**
 * The way back after a failover: resolve split-brain if needed (demote + resync the original
 * primary, wait for the full resync), then an orderly failover secondary → primary.
 * Resolves to the (re)opened original image, now primary.
 */
export async function failback(options: FailbackOptions): Promise<Image> {
  const o = checkOptions<FailbackOptions>(options, 'failback options', [
    'primary', 'secondary', 'timeoutMs', 'signal', 'pollMs', 'onProgress', 'resync',
  ]);
  if (!o.primary || !o.secondary) throw new TypeError('failback needs primary and secondary images');
  let primary: Image = o.primary;
  const secondary: Image = o.secondary;
  const w = checkWait({ timeoutMs: o.timeoutMs, signal: o.signal, pollMs: o.pollMs }, 'failback options');
  const progress = (step: FailoverStep, message: string) => o.onProgress?.({ step, message });
  const deadline = Date.now() + w.timeoutMs;
  const remaining = () => Math.max(1, deadline - Date.now());

  progress('check', `checking ${primary.spec} and ${secondary.spec}`);
  const [pi, si] = await Promise.all([primary.mirror.getInfo(), secondary.mirror.getInfo()]).catch((e) => {
    throw stepError('check', primary, e);
  });
  if (!si.primary) {
    throw codedError('EINVAL', `failback step 'check': ${secondary.spec} is not primary (nothing to fail back from)`, { step: 'check' });
  }
  const splitBrain = pi.primary;
  if (splitBrain || o.resync) {
    if (pi.primary) {
      progress('demote', `demoting ${primary.spec} (split-brain: both sites primary)`);
      try {
        await primary.mirror.demote();
      } catch (e) {
        throw stepError('demote', primary, e);
      }
    }
    progress('resync', `requesting resync of ${primary.spec} from ${secondary.spec}`);
    const pool = primary.pool;
    const name = primary.name;
    const oldId = (await primary.stat()).id;
    try {
      await primary.mirror.resync();
    } catch (e) {
      throw stepError('resync', primary, e);
    }
    // rbd-mirror deletes and recreates the image: let go of it.
    await primary.close();
    progress('wait', `waiting for ${pool.spec}/${name} to be recreated and synced`);
    primary = await poll(
      { timeoutMs: remaining(), pollMs: w.pollMs, signal: w.signal },
      `resync of '${pool.spec}/${name}'`,
      async () => {
        let img: Image;
        try {
          img = await pool.openImage(name);
        } catch (e) {
          if (isRbdError(e, 'ENOENT')) return undefined;
          throw e;
        }
        try {
          const [st, info] = await Promise.all([img.stat(), img.mirror.getInfo()]);
          if (st.id !== oldId && info.state === 'enabled' && !info.primary) {
            const status = await img.mirror.getStatus();
            if (status.local?.up && status.local.state === 'replaying') return img;
          }
        } catch (e) {
          if (!isRbdError(e, 'ENOENT')) {
            await img.close();
            throw e;
          }
        }
        await img.close();
        return undefined;
      },
      () => 'image not yet recreated and replaying',
    ).catch((e) => {
      throw stepError('wait', secondary, e);
    });
    if (si.mode === 'snapshot') {
      // The resync copies the latest mirror snapshot; make sure it is complete here.
      try {
        await waitForMirrorSync(secondary, { timeoutMs: remaining(), signal: w.signal, pollMs: w.pollMs, peer: primary });
      } catch (e) {
        throw stepError('wait', primary, e);
      }
    }
  }
  await failover({
    primary: secondary,
    secondary: primary,
    timeoutMs: remaining(),
    signal: w.signal,
    pollMs: w.pollMs,
    onProgress: o.onProgress,
  });
  return primary;
}
