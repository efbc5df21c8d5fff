// Mirroring site name (per cluster).
import { checkName, describe } from '../core/validate.js';
import type { Rados } from '../core/rados.js';
import { kHandle, kTrack } from '../core/internal.js';
import { m } from './types.js';

/** This cluster's mirroring site name (defaults to its fsid). */
export function getSiteName(rados: Rados): Promise<string> {
  return rados[kTrack](() => m.mirrorSiteNameGet(rados[kHandle]));
}

/** Sets this cluster's mirroring site name ('' restores the default). */
export async function setSiteName(rados: Rados, name: string): Promise<void> {
  if (typeof name !== 'string') throw new TypeError(`site name must be a string, got ${describe(name)}`);
  if (name !== '') checkName(name, 'site name');
  await rados[kTrack](() => m.mirrorSiteNameSet(rados[kHandle], name));
}
