// Per-image mirroring operations: `image.mirror`.
import { native, type ImageHandle } from '../binding/index.js';
import { codedError, isRbdError } from '../core/errors.js';
import { checkBool, checkOptions } from '../core/validate.js';
import type { Image } from '../core/image.js';
import { kHandle, kTrack } from '../core/internal.js';
import {
  IMAGE_MODES, checkEnum, imageModeName, imageModeRaw, imageStateName,
  type MirrorImageInfo, type MirrorImageMode, type MirrorImageStatus, type SettableImageMode, type SyncState, type WaitOptions,
} from './types.js';
import { toImageStatus } from './status.js';
import { sleep } from './wait.js';
import { waitForMirrorSync } from './failover.js';

/** How long a forced promote retries while the local rbd-mirror still holds the image's lock. */
const FORCE_PROMOTE_RETRY_MS = 15_000;

/** Mirroring operations on one open image. */
export class ImageMirror {
  /** @internal */
  constructor(readonly image: Image) {}

  private run<T>(fn: (h: ImageHandle) => Promise<T>): Promise<T> {
    return this.image[kTrack](() => fn(this.image[kHandle]));
  }

  /**
   * librbd answers ENOENT (promote) or EINVAL (others) on images without mirroring; give every
   * image-level operation the same EINVAL with a message saying why.
   */
  private async notEnabled(e: unknown): Promise<unknown> {
    if (!isRbdError(e, 'ENOENT') && !isRbdError(e, 'EINVAL')) return e;
    const info = await this.getInfo().catch(() => undefined);
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
   * Enables mirroring of the image. Journal mode needs the exclusive-lock and journaling features:
   * like the CLI, librbd turns them on when missing; if that is not possible (e.g. image opened
   * read-only) the error says which features to enable.
   */
  async enable(mode: SettableImageMode): Promise<void> {
    const md = imageModeRaw(checkEnum(mode, 'mirror image mode', IMAGE_MODES));
    const image = this.image;
    if (image.readOnly) {
      throw codedError('EROFS', `enable mirroring '${image.spec}' failed: the image is open read-only`, { operation: 'enable mirroring' });
    }
    try {
      await this.run((h) => native.enableImageMirroring(h, md));
    } catch (e) {
      if (isRbdError(e, 'EINVAL')) {
        const hint = await this.enableHint(mode).catch(() => '');
        if (hint) (e as Error).message += ` (${hint})`;
      }
      throw e;
    }
  }

  private async enableHint(mode: SettableImageMode): Promise<string> {
    const { pool } = this.image;
    const poolMode = await pool.mirror.getMode();
    if (poolMode === 'disabled') return `mirroring is disabled on pool '${pool.spec}': set the pool mode to 'image' first`;
    if (poolMode === 'pool') return `pool '${pool.spec}' mirrors in 'pool' mode: per-image enable needs 'image' mode`;
    if (mode === 'journal') {
      const st = await this.image.stat();
      const missing = (['exclusive-lock', 'journaling'] as const).filter((f) => !st.features.includes(f));
      if (missing.length) return `journal mode needs the ${missing.join(' and ')} feature(s): enable them with updateFeatures()`;
    }
    return '';
  }

  /** Disables mirroring; `force` also on a non-primary image (deleting it on this site when rbd-mirror cleans up). */
  async disable(options: { force?: boolean } = {}): Promise<void> {
    const o = checkOptions<{ force?: boolean }>(options, 'disable options', ['force']);
    const force = checkBool(o.force, 'force') ?? false;
    await this.run((h) => native.disableImageMirroring(h, force));
  }

  /** Mirroring state, global id, primary flag and (while enabled) mode. */
  async getInfo(): Promise<MirrorImageInfo> {
    const i = await this.run((h) => native.getImageMirrorInfo(h));
    const info: MirrorImageInfo = { globalId: i.globalId, state: imageStateName(i.state), primary: i.primary };
    if (i.mode >= 0) info.mode = imageModeName(i.mode);
    return info;
  }

  /** The image's mirroring mode (EINVAL when mirroring is not enabled on it). */
  async getMode(): Promise<MirrorImageMode> {
    // librbd reports a mode even for images that are not mirrored: check the state first.
    const info = await this.getInfo();
    const image = this.image;
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
   * Promotes the image to primary. Without `force` this fails with EBUSY until the demotion of the
   * old primary has been replicated here; `force` promotes anyway (split-brain unless the old
   * primary is demoted and resynced afterwards). EINVAL if already primary.
   */
  async promote(options: { force?: boolean } = {}): Promise<void> {
    const o = checkOptions<{ force?: boolean }>(options, 'promote options', ['force']);
    const force = checkBool(o.force, 'force') ?? false;
    try {
      const deadline = Date.now() + FORCE_PROMOTE_RETRY_MS;
      for (;;) {
        try {
          await this.run((h) => native.promoteImage(h, force));
          break;
        } catch (e) {
          // A forced promote asks the local rbd-mirror for the image's lock; while it is busy
          // replaying it may refuse once (EROFS). It gives the lock up for force promotion.
          if (!force || !isRbdError(e, 'EROFS') || Date.now() > deadline) throw e;
          await sleep(500);
        }
      }
    } catch (e) {
      const info = await this.getInfo().catch(() => undefined);
      if (info && info.state !== 'enabled') throw await this.notEnabled(e);
      if (isRbdError(e, 'EINVAL')) {
        if (info?.primary) (e as Error).message += ': the image is already primary';
      } else if (isRbdError(e, 'EBUSY') && !force) {
        (e as Error).message += ': the image is primary on a peer, or its demotion has not been replicated yet';
      }
      throw e;
    }
  }

  /** Demotes the primary image to non-primary (EINVAL if it is not primary). */
  async demote(): Promise<void> {
    try {
      await this.run((h) => native.demoteImage(h));
    } catch (e) {
      const info = await this.getInfo().catch(() => undefined);
      if (info && info.state !== 'enabled') throw await this.notEnabled(e);
      if (isRbdError(e, 'EINVAL') && info && !info.primary) (e as Error).message += ': the image is not primary';
      throw e;
    }
  }

  /** Flags a non-primary image for a full resync from the primary (rbd-mirror recreates it). */
  async resync(): Promise<void> {
    try {
      await this.run((h) => native.resyncImage(h));
    } catch (e) {
      throw await this.notEnabled(e);
    }
  }

  /** Creates a mirror snapshot (snapshot mode, primary image); returns its snapshot id. */
  async createSnapshot(): Promise<number> {
    try {
      return await this.run((h) => native.createMirrorSnapshot(h));
    } catch (e) {
      throw await this.notEnabled(e);
    }
  }

  /** Global status: each site's state, up/down, last update and parsed replay description. */
  async getStatus(): Promise<MirrorImageStatus> {
    const g = await this.run((h) => native.getImageMirrorStatus(h));
    const state = imageStateName(g.state);
    const image = this.image;
    if (state !== 'enabled') {
      // As `rbd mirror image status`: there is no status to show.
      throw codedError('EINVAL', `get mirror image status '${image.spec}' failed: mirroring is not enabled on the image (state ${state})`, {
        errno: -22,
        operation: 'get mirror image status',
        pool: image.pool.name,
        image: image.name,
      });
    }
    const [localSite, peers] = await image.pool.mirror.siteNames();
    return toImageStatus(g, localSite, peers);
  }

  /**
   * Resolves when the peer has copied the latest primary mirror snapshot (snapshot mode) or has
   * replayed the primary's journal up to its current end (journal mode). Call it on the primary.
   */
  waitForSync(options: WaitOptions = {}): Promise<SyncState> {
    return waitForMirrorSync(this.image, options);
  }
}
