export { Rados, DEFAULT_TIMEOUT_MS, type ConnectOptions } from './rados.js';
export { Pool, type CreateImageOptions, type OpenImageOptions } from './pool.js';
export { Image, type ImageStat } from './image.js';
export type { Extent, DiffOptions } from './diff.js';
export type { SnapshotInfo, SnapshotNamespace, SnapshotRef, MirrorSnapshotInfo } from './snapshot.js';
export { FEATURE_BITS, featureBits, featureNames, type FeatureName } from './features.js';
export { isRbdError, type RbdError } from './errors.js';
import { native } from './native.js';
/** Version of the librbd the addon is linked against. */
export const librbdVersion: string = native.librbdVersion;
export { replicate, type ReplicateOptions, type ReplicateResult, type ReplicateProgress, type ReplicateTargetSpec } from './replicate.js';
export { sourceIdentity, recordIdentity, readIdentity, sameSource, type SnapshotIdentity } from './identity.js';
export { exportDiff, importDiff, type ExportDiffOptions, type ExportProgress, type ImportDiffOptions, type ImportDiffResult, type ImportProgress } from './diffstream.js';
export { inspectDiff, parseDiff, type DiffSummary, type DiffEvent, type DiffVersion } from './diffformat.js';
export { syncImage, syncPool, syncSnapshotName, type SyncImageOptions, type SyncResult, type SyncPoolOptions, type SyncPoolResult, type SyncPoolImageResult, type SyncProgress, type SyncKeep } from './sync.js';
