// Loads the addon once (build/ first, then prebuilds/) and types its surface. Every native
// function is declared once, in the file named after the native/*.cc that defines it;
// test/integration/binding.test.ts checks the declared set against the loaded addon.
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import { errorsFunctions, type ErrorsBinding } from './errors.js';
import { connectionFunctions, type ConnectionBinding } from './connection.js';
import { poolFunctions, type PoolBinding } from './pool.js';
import { imageFunctions, type ImageBinding } from './image.js';
import { snapshotFunctions, type SnapshotBinding } from './snapshot.js';
import { diffFunctions, type DiffBinding } from './diff.js';
import { mirrorPoolFunctions, type MirrorPoolBinding } from './mirror-pool.js';
import { mirrorImageFunctions, type MirrorImageBinding } from './mirror-image.js';
import { copyFunctions, type CopyBinding } from './copy.js';
import { groupFunctions, type GroupBinding } from './group.js';
import { RbdError, errnoCode } from '../core/errors.js';

export type * from './handles.js';
export type { NativeErrorFactory } from './errors.js';
export type { NativeCreateImageOptions } from './pool.js';
export type { NativeStat } from './image.js';
export type { NativeSnap, NativeSnapRef } from './snapshot.js';
export type { NativeSiteStatus, NativeGlobalStatus, NativePeer, NativeMirrorImageInfo } from './mirror-pool.js';
export type { NativeImageMirrorInfo } from './mirror-image.js';
export type { NativeCopyOptions, NativeCopyResult } from './copy.js';
export type { NativeGroupImage, NativeGroupSnap } from './group.js';

/** native/addon.cc */
interface AddonBinding {
  /** Version of the librbd the addon runs with. */
  librbdVersion: string;
}

export type NativeBinding = AddonBinding & ErrorsBinding & ConnectionBinding & PoolBinding & ImageBinding &
  SnapshotBinding & DiffBinding & MirrorPoolBinding & MirrorImageBinding & CopyBinding & GroupBinding;

/** Every name the addon exports, by the file that declares it. */
export const NATIVE_EXPORTS: Record<string, readonly string[]> = {
  addon: ['librbdVersion'],
  errors: Object.keys(errorsFunctions),
  connection: Object.keys(connectionFunctions),
  pool: Object.keys(poolFunctions),
  image: Object.keys(imageFunctions),
  snapshot: Object.keys(snapshotFunctions),
  diff: Object.keys(diffFunctions),
  'mirror-pool': Object.keys(mirrorPoolFunctions),
  'mirror-image': Object.keys(mirrorImageFunctions),
  copy: Object.keys(copyFunctions),
  group: Object.keys(groupFunctions),
};

const require = createRequire(import.meta.url);
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

function load(): NativeBinding {
  // `npm run test:asan` points this at an AddressSanitizer build (scripts/asan.mjs).
  if (process.env.RBD_STREAM_ADDON) return require(path.resolve(process.env.RBD_STREAM_ADDON)) as NativeBinding;
  const gypBuild = require('node-gyp-build') as (dir: string) => NativeBinding;
  return gypBuild(root);
}

export const native: NativeBinding = load();

// Every error the addon raises is an RbdError; its code comes from the one table in lib/core/errors.ts.
native.setErrorFactory((message, { code, ...fields }) => {
  if (code !== undefined) return new RbdError(code, message, fields);
  const name = errnoCode(fields.errno ?? 0);
  return new RbdError(name, `${name}: ${message}`, fields);
});
