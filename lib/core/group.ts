// Consistency groups: a set of images snapshotted (and rolled back) together, crash-consistently.
// librbd's group API is name-based, so a Group is a (pool, name) pair with no native handle of its
// own: its calls run on its pool's handle and reject with ERR_CLOSED once the pool is closed.
import { native, type IoCtxHandle } from '../binding/index.js';
import { codedError } from './errors.js';
import { checkGroupName, checkImageName, checkOptions, checkSignal, checkSnapName, describe } from './validate.js';
import { SNAP_CREATE_IGNORE_QUIESCE_ERROR, SNAP_CREATE_SKIP_QUIESCE, snapshotCreateFlags, type SnapshotCreateOptions } from './snapshot.js';
import { Image } from './image.js';
import { Pool } from './pool.js';
import { kHandle, kTrack } from './internal.js';

/** A member image of a group. `state` is 'incomplete' while an add or remove was interrupted. */
export interface GroupImageInfo {
  /** Name of the image's pool. */
  pool: string;
  poolId: number;
  name: string;
  state: 'attached' | 'incomplete' | 'unknown';
}

/** A group snapshot. `state` is 'incomplete' when its creation failed part way. */
export interface GroupSnapshotInfo {
  name: string;
  state: 'incomplete' | 'complete' | 'unknown';
}

/** The group an image belongs to (image.getGroup()). */
export interface ImageGroupInfo {
  /** Name of the group's pool. */
  pool: string;
  poolId: number;
  name: string;
}

/** An image for addImage/removeImage: a name in the group's pool, an open Image, or a pool and a name. */
export type GroupImageRef = string | Image | { pool: Pool; name: string };

/** As for one image's snapshot, applied to every member's clients. */
export type GroupSnapshotCreateOptions = SnapshotCreateOptions;

export interface GroupRollbackProgress {
  /** Objects rolled back, as librbd last reported them (see rollbackSnapshot). */
  done: number;
  total: number;
}

export interface GroupRollbackOptions {
  /**
   * Checked before the rollback starts only: librbd's group rollback cannot be cancelled once
   * running (it ignores its progress callback's answer), and stopping it half way would leave
   * the members inconsistent. An aborted signal rejects with ABORT_ERR and changes nothing.
   */
  signal?: AbortSignal;
  /** Called at most every 100 ms while the rollback runs, and once at its end. */
  onProgress?: (p: GroupRollbackProgress) => void;
}

export class Group {
  #name: string;

  /** @hidden Made by pool.createGroup() / pool.openGroup(), not constructed directly. */
  constructor(
    readonly pool: Pool,
    name: string,
  ) {
    this.#name = name;
  }

  /** The group's name (updated by rename()). */
  get name(): string {
    return this.#name;
  }

  /** pool[/namespace]/group */
  get spec(): string {
    return `${this.pool.spec}/${this.#name}`;
  }

  private run<T>(fn: (h: IoCtxHandle, name: string) => Promise<T>): Promise<T> {
    const name = this.#name;
    return this.pool[kTrack](() => fn(this.pool[kHandle], name));
  }

  /** Renames the group (EEXIST when the new name is taken). */
  async rename(to: string): Promise<void> {
    checkGroupName(to, 'to');
    await this.run((h, name) => native.renameGroup(h, name, to));
    this.#name = to;
  }

  /**
   * Adds an image (a name in the group's pool, an open Image, or `{ pool, name }`). The image must
   * be in the group's namespace (EINVAL otherwise); an image can be in one group only (EEXIST).
   */
  async addImage(image: GroupImageRef): Promise<void> {
    const [pool, name] = imageRef(this.pool, image);
    await this.run((h, group) => pool[kTrack](() => native.addGroupImage(h, group, pool[kHandle], name)));
  }

  /** Removes an image from the group (ENOENT for a missing image; a non-member is a no-op, as in librbd). */
  async removeImage(image: GroupImageRef): Promise<void> {
    const [pool, name] = imageRef(this.pool, image);
    await this.run((h, group) => pool[kTrack](() => native.removeGroupImage(h, group, pool[kHandle], name)));
  }

  /** The member images (ENOENT when the group no longer exists). */
  listImages(): Promise<GroupImageInfo[]> {
    return this.run((h, name) => native.listGroupImages(h, name));
  }

  /**
   * Snapshots every member at one point in time: librbd quiesces the members' clients (unless
   * skipQuiesce), blocks their writes, snapshots each member (a snapshot in the 'group' namespace,
   * see SnapshotInfo.group) and records the group snapshot.
   */
  async createSnapshot(name: string, options: GroupSnapshotCreateOptions = {}): Promise<void> {
    checkSnapName(name);
    const flags = snapshotCreateFlags(options, 'createSnapshot options');
    await this.run((h, group) => native.createGroupSnapshot(h, group, name, (flags & SNAP_CREATE_SKIP_QUIESCE) !== 0, (flags & SNAP_CREATE_IGNORE_QUIESCE_ERROR) !== 0));
  }

  /** Removes a group snapshot and its members' snapshots (ENOENT when missing). */
  async removeSnapshot(name: string): Promise<void> {
    checkSnapName(name);
    await this.run((h, group) => native.removeGroupSnapshot(h, group, name));
  }

  async renameSnapshot(from: string, to: string): Promise<void> {
    checkSnapName(from, 'from');
    checkSnapName(to, 'to');
    await this.run((h, group) => native.renameGroupSnapshot(h, group, from, to));
  }

  /**
   * The group's snapshots, in librbd's order (on Pacific by internal id, not by creation time);
   * ENOENT when the group no longer exists.
   */
  listSnapshots(): Promise<GroupSnapshotInfo[]> {
    return this.run((h, name) => native.listGroupSnapshots(h, name));
  }

  /**
   * Rolls every member back to a group snapshot. librbd takes each member's exclusive lock (other
   * clients must let go of it) and rolls the members back in parallel.
   *
   * Progress: librbd reports each member's (objects done, objects total) through one callback
   * without saying which member, so with several members `done`/`total` are those of the member
   * that reported last; reports are throttled to one per 100 ms, plus a last one at the end.
   *
   * Abort: the signal is checked before the rollback starts only. Once started it runs to the
   * end; librbd offers no way to cancel it.
   */
  async rollbackSnapshot(name: string, options: GroupRollbackOptions = {}): Promise<void> {
    checkSnapName(name);
    const o = checkOptions<GroupRollbackOptions>(options, 'rollbackSnapshot options', ['signal', 'onProgress']);
    const signal = checkSignal(o.signal);
    const onProgress = o.onProgress;
    if (onProgress !== undefined && typeof onProgress !== 'function') {
      throw new TypeError(`onProgress must be a function, got ${describe(onProgress)}`);
    }
    if (signal?.aborted) {
      const e = codedError('ABORT_ERR', `rollback of group '${this.spec}' to '${name}' aborted before it started`, {
        operation: 'rollback group snapshot', pool: this.pool.name, group: this.#name, snapshot: name,
      });
      e.name = 'AbortError';
      (e as Error & { cause?: unknown }).cause = signal.reason;
      throw e;
    }
    let settled = false;
    const report = onProgress ? (done: number, total: number) => { if (!settled) onProgress({ done, total }); } : undefined;
    let last: { done: number; total: number } | null;
    try {
      last = await this.run((h, group) => native.rollbackGroupSnapshot(h, group, name, report));
    } finally {
      // Reports still queued on their way from librbd's threads arrive after this: drop them.
      settled = true;
    }
    if (onProgress && last) onProgress({ done: last.done, total: last.total });
  }
}

function imageRef(groupPool: Pool, image: unknown): [Pool, string] {
  if (typeof image === 'string') return [groupPool, checkImageName(image)];
  if (image instanceof Image) return [image.pool, image.name];
  if (image !== null && typeof image === 'object' && 'pool' in image && 'name' in image) {
    const { pool, name } = image as { pool: unknown; name: unknown };
    if (!(pool instanceof Pool)) throw new TypeError(`image.pool must be a Pool, got ${describe(pool)}`);
    return [pool, checkImageName(name, 'image.name')];
  }
  throw new TypeError(`image must be a name, an Image or { pool, name }, got ${describe(image)}`);
}
