export { Rados, DEFAULT_TIMEOUT_MS, type ConnectOptions } from './core/rados.js';
export { Pool, type CreateImageOptions, type OpenImageOptions } from './core/pool.js';
export { Image, type ImageStat } from './core/image.js';
export type { Extent, DiffOptions } from './core/diff.js';
export type { SnapshotInfo, SnapshotNamespace, SnapshotRef, MirrorSnapshotInfo } from './core/snapshot.js';
export { FEATURE_BITS, featureBits, featureNames, type FeatureName } from './core/features.js';
export { isRbdError, type RbdError } from './core/errors.js';
import { native } from './binding/index.js';
/** Version of the librbd the addon is linked against. */
export const librbdVersion: string = native.librbdVersion;
export {
  MirrorPool, mirrorPool, getSiteName, setSiteName, parseMirrorDescription,
  enableMirroring, disableMirroring, getMirrorInfo, getMirrorMode, promoteImage, demoteImage, resyncImage,
  createMirrorSnapshot, getMirrorStatus,
  addSnapshotSchedule, removeSnapshotSchedule, listSnapshotSchedules, snapshotScheduleStatus,
  waitForMirrorSync, failover, failback,
  type MirrorMode, type MirrorImageMode, type MirrorPeerDirection, type MirrorImageState, type MirrorStatusState,
  type MirrorHealth, type MirrorPeer, type AddPeerOptions, type JournalPosition, type MirrorReplayStatus,
  type MirrorSiteStatus, type MirrorImageStatus, type MirrorImageInfo, type MirroredImage, type MirrorDaemonInfo,
  type MirrorPoolStatus, type ScheduleLevel, type SnapshotScheduleItem, type SnapshotScheduleLevel, type ScheduledImage,
  type WaitOptions, type SyncState, type FailoverStep, type FailoverProgress, type FailoverOptions, type FailbackOptions,
} from './mirror/mirror.js';
export { replicate } from './transfer/replicate/run.js';
export type { ReplicateOptions, ReplicateResult, ReplicateProgress, ReplicateTargetSpec } from './transfer/replicate/options.js';
export { sourceIdentity, recordIdentity, readIdentity, sameSource, type SnapshotIdentity } from './transfer/identity.js';
export { exportDiff, type ExportDiffOptions, type ExportProgress } from './transfer/diff-export.js';
export { importDiff, type ImportDiffOptions, type ImportDiffResult, type ImportProgress } from './transfer/diff-import.js';
export { inspectDiff, parseDiff, type DiffSummary, type DiffEvent, type DiffVersion } from './transfer/diff-format.js';
export { syncImage, syncPool, syncSnapshotName, type SyncImageOptions, type SyncResult, type SyncPoolOptions, type SyncPoolResult, type SyncPoolImageResult, type SyncProgress, type SyncKeep } from './transfer/sync.js';
