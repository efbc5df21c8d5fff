// Mirroring site name (per cluster).
import { native } from '../binding/index.js';
import { checkName, describe } from '../core/validate.js';
import type { Rados } from '../core/rados.js';
import { kHandle, kTrack } from '../core/internal.js';

/** This cluster's mirroring site name (defaults to its fsid). */
export function getSiteName(rados: Rados): Promise<string> {
  return rados[kTrack](() => native.getMirrorSiteName(rados[kHandle]));
}

/** Sets this cluster's mirroring site name ('' restores the default). */
export async function setSiteName(rados: Rados, name: string): Promise<void> {
  if (typeof name !== 'string') throw new TypeError(`site name must be a string, got ${describe(name)}`);
  if (name !== '') checkName(name, 'site name');
  await rados[kTrack](() => native.setMirrorSiteName(rados[kHandle], name));
}
