// A pool (librados io context), optionally within a namespace.
import { native, type IoCtxHandle } from '../binding/index.js';
import { NativeHandle } from './handle.js';
import { checkGroupName, checkImageName, checkOptions, checkSnapName, checkUint, describe } from './validate.js';
import { codedError } from './errors.js';
import { featureBits, type FeatureName } from './features.js';
import { Image } from './image.js';
import { Group } from './group.js';
import type { Rados } from './rados.js';
import { kHandle, kTrack, kForget } from './internal.js';
import { PoolMirror } from '../mirror/pool.js';

export interface CreateImageOptions {
  /** Feature names; default: the cluster's rbd_default_features. */
  features?: FeatureName[];
  /** Object size as a power of two (12..25); default 22 (4 MiB). */
  order?: number;
  /** Pool for the data objects (erasure-coded pools). */
  dataPool?: string;
  stripeUnit?: number;
  stripeCount?: number;
}

export interface OpenImageOptions {
  /** Open without write access (no exclusive lock taken). */
  readOnly?: boolean;
  /** Open at a snapshot: a user snapshot name, or { id } for any namespace (mirror, trash). */
  snapshot?: string | { id: number };
}

export class Pool extends NativeHandle<IoCtxHandle> {
  private mirrorOps: PoolMirror | undefined;

  /** @hidden Opened by rados.openPool(), not constructed directly. */
  constructor(
    readonly rados: Rados,
    handle: IoCtxHandle,
    readonly name: string,
    readonly namespace: string,
  ) {
    super(handle, () => `pool '${this.spec}'`);
  }

  /** 'pool' or 'pool/namespace'. */
  get spec(): string {
    return this.namespace ? `${this.name}/${this.namespace}` : this.name;
  }

  /** Mirroring of this pool (or namespace): mode, peers, bootstrap, status. */
  get mirror(): PoolMirror {
    return (this.mirrorOps ??= new PoolMirror(this));
  }

  /** The pool's numeric id. */
  get id(): number {
    return native.getPoolId(this[kHandle]);
  }

  async createImage(name: string, size: number, options: CreateImageOptions = {}): Promise<void> {
    checkImageName(name);
    checkUint(size, 'size');
    const n = createImageArgs(options, 'createImage options');
    await this.life.run(() => native.createImage(this[kHandle], name, size, n));
  }

  /** Image names, sorted. */
  async listImages(): Promise<string[]> {
    return (await this.listImageSpecs()).map((s) => s.name);
  }

  /** Images with their ids, sorted by name. */
  async listImageSpecs(): Promise<{ id: string; name: string }[]> {
    const list = await this.life.run(() => native.listImages(this[kHandle]));
    return list.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  /** Removes an image (fails with ENOTEMPTY while it has snapshots, EBUSY while open elsewhere). */
  async removeImage(name: string): Promise<void> {
    checkImageName(name);
    await this.life.run(() => native.removeImage(this[kHandle], name));
  }

  async renameImage(from: string, to: string): Promise<void> {
    checkImageName(from, 'from');
    checkImageName(to, 'to');
    await this.life.run(() => native.renameImage(this[kHandle], from, to));
  }

  async openImage(name: string, options: OpenImageOptions = {}): Promise<Image> {
    checkImageName(name);
    const o = checkOptions<OpenImageOptions>(options, 'openImage options', ['readOnly', 'snapshot']);
    const readOnly = o.readOnly ?? false;
    if (typeof readOnly !== 'boolean') throw new TypeError('readOnly must be a boolean');
    const n: Parameters<typeof native.openImage>[2] = { readOnly };
    let snapshot: string | undefined;
    if (typeof o.snapshot === 'string') {
      n.snapName = checkSnapName(o.snapshot);
      snapshot = o.snapshot;
    } else if (o.snapshot !== undefined) {
      if (o.snapshot === null || typeof o.snapshot !== 'object') {
        throw new TypeError(`snapshot must be a name or { id }, got ${describe(o.snapshot)}`);
      }
      n.snapId = checkUint(o.snapshot.id, 'snapshot.id');
      snapshot = `#${o.snapshot.id}`;
    }
    const handle = await this.life.run(() => native.openImage(this[kHandle], name, n));
    const image = new Image(this, handle, name, { readOnly: readOnly || snapshot !== undefined, snapshot });
    this.life.adopt(image);
    return image;
  }

  // --- consistency groups -------------------------------------------------

  /** Creates a consistency group (EEXIST when the name is taken). */
  async createGroup(name: string): Promise<Group> {
    checkGroupName(name);
    await this.life.run(() => native.createGroup(this[kHandle], name));
    return new Group(this, name);
  }

  /** The existing group with this name (ENOENT when there is none). */
  async openGroup(name: string): Promise<Group> {
    checkGroupName(name);
    if (!(await this.life.run(() => native.groupExists(this[kHandle], name)))) {
      throw codedError('ENOENT', `open group '${this.spec}/${name}' failed: No such file or directory`, {
        errno: -2, operation: 'open group', pool: this.name, ...(this.namespace ? { namespace: this.namespace } : {}), group: name,
      });
    }
    return new Group(this, name);
  }

  /** Group names, sorted. */
  async listGroups(): Promise<string[]> {
    return (await this.life.run(() => native.listGroups(this[kHandle]))).sort();
  }

  /** Removes a group with its group snapshots; its images stay (ENOENT when missing). */
  async removeGroup(name: string): Promise<void> {
    checkGroupName(name);
    await this.life.run(() => native.removeGroup(this[kHandle], name));
  }

  /** Renames a group (ENOENT when missing, EEXIST when the new name is taken). Group objects keep the old name: use group.rename() to have one follow. */
  async renameGroup(from: string, to: string): Promise<void> {
    checkGroupName(from, 'from');
    checkGroupName(to, 'to');
    await this.life.run(() => native.renameGroup(this[kHandle], from, to));
  }

  /** @internal */
  [kForget](image: Image): void {
    this.life.forget(image);
  }

  /** @internal */
  protected async release(h: IoCtxHandle): Promise<void> {
    this.rados[kForget](this);
    await native.closePool(h);
  }
}

/** Validates image creation options (TypeError/RangeError) into the native call's form. */
export function createImageArgs(options: CreateImageOptions, what: string): Parameters<typeof native.createImage>[3] {
  const o = checkOptions<CreateImageOptions>(options, what, ['features', 'order', 'dataPool', 'stripeUnit', 'stripeCount']);
  const n: Parameters<typeof native.createImage>[3] = {};
  if (o.features !== undefined) n.features = featureBits(o.features);
  if (o.order !== undefined) n.order = checkUint(o.order, 'order', { min: 12, max: 25 });
  if (o.dataPool !== undefined) n.dataPool = checkImageName(o.dataPool, 'dataPool');
  if (o.stripeUnit !== undefined) n.stripeUnit = checkUint(o.stripeUnit, 'stripeUnit', { min: 1 });
  if (o.stripeCount !== undefined) n.stripeCount = checkUint(o.stripeCount, 'stripeCount', { min: 1 });
  return n;
}
