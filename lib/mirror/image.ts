// Per-image mirroring operations.
import { type ImageHandle } from '../binding/index.js';
import { codedError, isRbdError } from '../core/errors.js';
import { checkBool, checkOptions, describe } from '../core/validate.js';
import type { Image } from '../core/image.js';
import { kHandle, kTrack } from '../core/internal.js';
import { IMAGE_MODES, checkEnum, m, type MirrorImageInfo, type MirrorImageMode, type MirrorImageStatus } from './types.js';
import { toImageStatus } from './status.js';
import { mirrorPool } from './pool.js';
import { sleep } from './wait.js';

function imageRun<T>(image: Image, fn: (h: ImageHandle) => Promise<T>): Promise<T> {
  if (image === null || typeof image !== 'object' || typeof (image as Image)[kTrack] !== 'function') {
    return Promise.reject(new TypeError(`image must be an Image, got ${describe(image)}`));
  }
  return image[kTrack](() => fn(image[kHandle]));
}

/**
 * librbd answers ENOENT (promote) or EINVAL (others) on images without mirroring; give every
 * image-level operation the same EINVAL with a message saying why.
 */
async function notEnabled(image: Image, e: unknown): Promise<unknown> {
  if (!isRbdError(e, 'ENOENT') && !isRbdError(e, 'EINVAL')) return e;
  const info = await getMirrorInfo(image).catch(() => undefined);
  if (!info || info.state === 'enabled') return e;
  const err = e as Error & { code: string; errno: number };
  if (err.code === 'ENOENT') {
    err.code = 'EINVAL';
    err.errno = -22;
    err.message = err.message.replace(/^ENOENT: (.*) failed: .*$/s, 'EINVAL: $1 failed');
  }
  err.message += `: mirroring is not enabled on the image (state ${info.state})`;
  return err;
}

/**
 * Enables mirroring of an image. Journal mode needs the exclusive-lock and journaling features:
 * like the CLI, librbd turns them on when missing; if that is not possible (e.g. image opened
 * read-only) the error says which features to enable.
 */
export async function enableMirroring(image: Image, mode: MirrorImageMode): Promise<void> {
  const md = IMAGE_MODES.indexOf(checkEnum(mode, 'mirror image mode', IMAGE_MODES));
  if (image?.readOnly) {
    throw codedError('EROFS', `enable mirroring '${image.spec}' failed: the image is open read-only`, { operation: 'enable mirroring' });
  }
  try {
    await imageRun(image, (h) => m.mirrorImageOp(h, 'enable', md));
  } catch (e) {
    if (isRbdError(e, 'EINVAL')) {
      const hint = await enableHint(image, mode).catch(() => '');
      if (hint) (e as Error).message += ` (${hint})`;
    }
    throw e;
  }
}

async function enableHint(image: Image, mode: MirrorImageMode): Promise<string> {
  const poolMode = await mirrorPool(image.pool).getMode();
  if (poolMode === 'disabled') return `mirroring is disabled on pool '${image.pool.spec}': set the pool mode to 'image' first`;
  if (poolMode === 'pool') return `pool '${image.pool.spec}' mirrors in 'pool' mode: per-image enable needs 'image' mode`;
  if (mode === 'journal') {
    const st = await image.stat();
    const missing = (['exclusive-lock', 'journaling'] as const).filter((f) => !st.features.includes(f));
    if (missing.length) return `journal mode needs the ${missing.join(' and ')} feature(s): enable them with updateFeatures()`;
  }
  return '';
}

/** Disables mirroring; `force` also on a non-primary image (deleting it on this site when rbd-mirror cleans up). */
export async function disableMirroring(image: Image, options: { force?: boolean } = {}): Promise<void> {
  const o = checkOptions<{ force?: boolean }>(options, 'disableMirroring options', ['force']);
  const force = checkBool(o.force, 'force') ?? false;
  await imageRun(image, (h) => m.mirrorImageOp(h, 'disable', force));
}

export function getMirrorInfo(image: Image): Promise<MirrorImageInfo> {
  return imageRun(image, (h) => m.mirrorGetInfo(h));
}

/** The image's mirroring mode (EINVAL when mirroring is not enabled on it). */
export async function getMirrorMode(image: Image): Promise<MirrorImageMode> {
  // librbd reports a mode even for images that are not mirrored: check the state first.
  const info = await getMirrorInfo(image);
  if (info.state !== 'enabled' || !info.mode) {
    throw codedError('EINVAL', `get mirror image mode '${image.spec}' failed: mirroring is not enabled on the image (state ${info.state})`, {
      errno: -22,
      operation: 'get mirror image mode',
      pool: image.pool.name,
      image: image.name,
    });
  }
  return info.mode;
}

/**
 * Promotes an image to primary. Without `force` this fails with EBUSY until the demotion of the
 * old primary has been replicated here; `force` promotes anyway (split-brain unless the old
 * primary is demoted and resynced afterwards). EINVAL if already primary.
 */
const FORCE_PROMOTE_RETRY_MS = 15_000;

export async function promoteImage(image: Image, options: { force?: boolean } = {}): Promise<void> {
  const o = checkOptions<{ force?: boolean }>(options, 'promoteImage options', ['force']);
  const force = checkBool(o.force, 'force') ?? false;
  try {
    const deadline = Date.now() + FORCE_PROMOTE_RETRY_MS;
    for (;;) {
      try {
        await imageRun(image, (h) => m.mirrorImageOp(h, 'promote', force));
        break;
      } catch (e) {
        // A forced promote asks the local rbd-mirror for the image's lock; while it is busy
        // replaying it may refuse once (EROFS). It gives the lock up for force promotion.
        if (!force || !isRbdError(e, 'EROFS') || Date.now() > deadline) throw e;
        await sleep(500);
      }
    }
  } catch (e) {
    const info = await getMirrorInfo(image).catch(() => undefined);
    if (info && info.state !== 'enabled') throw await notEnabled(image, e);
    if (isRbdError(e, 'EINVAL')) {
      if (info?.primary) (e as Error).message += ': the image is already primary';
    } else if (isRbdError(e, 'EBUSY') && !force) {
      (e as Error).message += ': the image is primary on a peer, or its demotion has not been replicated yet';
    }
    throw e;
  }
}

export async function demoteImage(image: Image): Promise<void> {
  try {
    await imageRun(image, (h) => m.mirrorImageOp(h, 'demote'));
  } catch (e) {
    const info = await getMirrorInfo(image).catch(() => undefined);
    if (info && info.state !== 'enabled') throw await notEnabled(image, e);
    if (isRbdError(e, 'EINVAL') && info && !info.primary) (e as Error).message += ': the image is not primary';
    throw e;
  }
}

/** Flags a non-primary image for a full resync from the primary (rbd-mirror recreates it). */
export async function resyncImage(image: Image): Promise<void> {
  try {
    await imageRun(image, (h) => m.mirrorImageOp(h, 'resync'));
  } catch (e) {
    throw await notEnabled(image, e);
  }
}

/** Creates a mirror snapshot (snapshot mode, primary image); returns its snapshot id. */
export async function createMirrorSnapshot(image: Image): Promise<number> {
  try {
    return await imageRun(image, (h) => m.mirrorCreateSnapshot(h));
  } catch (e) {
    throw await notEnabled(image, e);
  }
}

/** Global status: each site's state, up/down, last update and parsed replay description. */
export async function getMirrorStatus(image: Image): Promise<MirrorImageStatus> {
  const g = await imageRun(image, (h) => m.mirrorGetGlobalStatus(h));
  if (g.state !== 'enabled') {
    // As `rbd mirror image status`: there is no status to show.
    throw codedError('EINVAL', `get mirror image status '${image.spec}' failed: mirroring is not enabled on the image (state ${g.state})`, {
      errno: -22,
      operation: 'get mirror image status',
      pool: image.pool.name,
      image: image.name,
    });
  }
  const [localSite, peers] = await mirrorPool(image.pool).siteNames();
  return toImageStatus(g, localSite, peers);
}
