// The package's public API: re-exports only.
export { Rados, DEFAULT_TIMEOUT_MS, type ConnectOptions } from './core/rados.js';
export { Pool, type CreateImageOptions, type OpenImageOptions } from './core/pool.js';
export { Image, type ImageStat, type LockOwners, type Watcher } from './core/image.js';
export {
  Group, type GroupImageInfo, type GroupSnapshotInfo, type ImageGroupInfo, type GroupImageRef,
  type GroupSnapshotCreateOptions, type GroupRollbackOptions, type GroupRollbackProgress,
} from './core/group.js';
export type { Extent, DiffOptions } from './core/diff.js';
export type { SnapshotInfo, SnapshotNamespace, SnapshotRef, SnapshotCreateOptions, MirrorSnapshotInfo } from './core/snapshot.js';
export { FEATURE_BITS, featureBits, featureNames, type FeatureName, type LockMode } from './core/features.js';
export { RbdError, isRbdError, type RbdErrorCode } from './core/errors.js';
export { librbdVersion, capabilities, type Capabilities } from './core/librbd.js';
export { RadosMirror } from './mirror/rados.js';
export { PoolMirror, type PeerKeyOptions, type PeerKeyType } from './mirror/pool.js';
export { ImageMirror } from './mirror/image.js';
export { failover, failback } from './mirror/failover.js';
export { parseMirrorDescription } from './mirror/status.js';
export type {
  MirrorMode, MirrorImageMode, MirrorPeerDirection, MirrorImageState, MirrorStatusState,
  SettableMirrorMode, SettableImageMode, SettablePeerDirection,
  MirrorHealth, MirrorPeer, AddPeerOptions, JournalPosition, MirrorReplayStatus,
  MirrorSiteStatus, MirrorImageStatus, MirrorImageInfo, MirroredImage, MirrorDaemonInfo,
  MirrorPoolStatus, ScheduleLevel, SnapshotScheduleItem, SnapshotScheduleLevel, ScheduledImage,
  WaitOptions, SyncState, FailoverStep, FailoverProgress, FailoverOptions, FailbackOptions,
} from './mirror/types.js';
export { replicate } from './transfer/replicate/run.js';
export type { ReplicateOptions, ReplicateResult, ReplicateProgress, ReplicateTargetSpec, DiscardedChanges } from './transfer/replicate/options.js';
export { sourceIdentity, recordIdentity, readIdentity, sameSource, type SnapshotIdentity } from './transfer/identity.js';
export type { ExportDiffOptions, ExportProgress } from './transfer/diff-export.js';
export { importDiff, type ImportDiffOptions, type ImportDiffResult, type ImportProgress } from './transfer/diff-import.js';
export { inspectDiff, parseDiff, type DiffSummary, type DiffEvent, type DiffVersion } from './transfer/diff-format.js';
export { syncImage, syncPool, syncSnapshotName, type SyncImageOptions, type SyncResult, type SyncPoolOptions, type SyncPoolResult, type SyncPoolImageResult, type SyncProgress, type SyncKeep } from './transfer/sync.js';
export { syncGroup, type SyncGroupOptions, type SyncGroupResult, type SyncGroupMemberResult } from './transfer/sync-group.js';
export { syncFailover, type SyncFailoverOptions, type SyncFailoverResult, type SyncFailoverImageResult } from './transfer/sync-failover.js';
