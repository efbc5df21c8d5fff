// What the running librbd is, and what it offers beyond Pacific's C API (found by dlsym at run time:
// one binary built against the oldest supported headers uses newer calls where they exist).
import { native } from '../binding/index.js';
import { codedError } from './errors.js';

/** Version of the librbd the addon runs with, e.g. '1.16.0' (librbd's own numbering). */
export const librbdVersion: string = native.librbdVersion;

/** What the running librbd can do (see {@link capabilities}). */
export interface Capabilities {
  /** librbd's own version ('1.16.0' on Pacific, '1.18.0' on every Reef). */
  librbdVersion: string;
  /** The Ceph release of the loaded libraries, e.g. '16.2.15' (null if it cannot be read). */
  cephVersion: string | null;
  /**
   * `rbd_diff_iterate3` (Reef 18.2.5+, Squid 19.2.3+): diffs from a snapshot given by id
   * (`fromSnapId`), which also reaches mirror, trash and group snapshots.
   */
  diffIterate3: boolean;
}

let cached: Capabilities | undefined;

/** What the running librbd offers; the same object on every call. */
export function capabilities(): Capabilities {
  cached ??= Object.freeze({ librbdVersion, ...native.getCapabilities() });
  return cached;
}

/**
 * ENOTSUP when the running librbd has no rbd_diff_iterate3 (a diff from a snapshot by id), with
 * the version found and the one needed. `ctx` names the operation and image for the error.
 */
export function requireDiffIterate3(ctx: { operation: string; pool?: string; image?: string; snapshot?: string }): void {
  const c = capabilities();
  if (c.diffIterate3) return;
  const where = ctx.pool !== undefined && ctx.image !== undefined ? ` of '${ctx.pool}/${ctx.image}'` : '';
  throw codedError(
    'ENOTSUP',
    `${ctx.operation}${where}: a diff from a snapshot id needs rbd_diff_iterate3 (Reef 18.2.5+ or Squid 19.2.3+); ` +
      `the running librbd is ${c.librbdVersion} (Ceph ${c.cephVersion ?? 'unknown'}) and lacks it`,
    { errno: -95, ...ctx },
  );
}
