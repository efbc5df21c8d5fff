// Public mirroring types, and the tables mapping librbd's raw enum values to their names.
import { describe } from '../core/validate.js';
import type { Image } from '../core/image.js';

/** Pool mirroring mode (rbd_mirror_mode_t). 'init-only' exists from Squid on. */
export type MirrorMode = 'disabled' | 'image' | 'pool' | 'init-only' | 'unknown';
/** How an image is mirrored (rbd_mirror_image_mode_t). */
export type MirrorImageMode = 'journal' | 'snapshot' | 'unknown';
/** rbd_mirror_peer_direction_t */
export type MirrorPeerDirection = 'rx-only' | 'tx-only' | 'rx-tx' | 'unknown';
/**
 * State of mirroring on an image (librbd's rbd_mirror_image_state_t). 'creating' (newer
 * releases) marks an image rbd-mirror is still creating on this site.
 */
export type MirrorImageState = 'disabling' | 'enabled' | 'disabled' | 'creating' | 'unknown';
/** Replication state reported by a site (rbd_mirror_image_status_state_t). */
export type MirrorStatusState =
  | 'unknown'
  | 'error'
  | 'syncing'
  | 'starting_replay'
  | 'replaying'
  | 'stopping_replay'
  | 'stopped';
export type MirrorHealth = 'OK' | 'WARNING' | 'ERROR' | 'UNKNOWN';

export interface MirrorPeer {
  uuid: string;
  direction: MirrorPeerDirection;
  siteName: string;
  /** The peer's mirror uuid (known once its rbd-mirror daemon has connected). */
  mirrorUuid: string;
  /** e.g. 'client.rbd-mirror-peer'. */
  clientName: string;
  /** Last time the peer's rbd-mirror daemon was seen, if ever. */
  lastSeen?: Date;
  /** Monitor address(es) stored for the peer, if any. */
  monHost?: string;
  /** Whether a cephx key is stored for the peer (the key itself is never returned). */
  keySet: boolean;
}

export interface AddPeerOptions {
  /** Default 'rx-tx' (librbd refuses 'tx-only' on add). */
  direction?: 'rx-only' | 'rx-tx';
  /** Remote monitor address(es), e.g. 'v2:10.0.0.1:3300'. */
  monHost?: string;
  /** Remote cephx key (base64); stored in the pool's config-key store, never echoed. */
  key?: string;
}

/** Position in a journal (journal-mode replay). */
export interface JournalPosition {
  entryTid: number;
  objectNumber: number;
  tagTid: number;
}

/** The JSON a replaying site puts in its status description, in typed form. */
export interface MirrorReplayStatus {
  replayState?: string;
  bytesPerSecond?: number;
  // snapshot mode
  bytesPerSnapshot?: number;
  lastSnapshotBytes?: number;
  lastSnapshotSyncSeconds?: number;
  /** Timestamps (seconds since the epoch) of the last synced local / latest remote mirror snapshot. */
  localSnapshotTimestamp?: number;
  remoteSnapshotTimestamp?: number;
  syncingSnapshotTimestamp?: number;
  syncingPercent?: number;
  // journal mode
  entriesBehindPrimary?: number;
  entriesPerSecond?: number;
  primaryPosition?: JournalPosition;
  nonPrimaryPosition?: JournalPosition;
  /** The parsed JSON as sent by rbd-mirror. */
  raw: Record<string, unknown>;
}

export interface MirrorSiteStatus {
  /** Site name: the local site name for the local entry, the peer's for remote ones ('' if unknown). */
  siteName: string;
  /** '' for the local site. */
  mirrorUuid: string;
  local: boolean;
  state: MirrorStatusState;
  up: boolean;
  /** As the CLI shows it: 'up+replaying', 'down+unknown', … */
  summary: string;
  /** The description text without the JSON part (e.g. 'replaying', 'local image is primary'). */
  description: string;
  /** The full description as reported. */
  rawDescription: string;
  lastUpdate?: Date;
  replay?: MirrorReplayStatus;
}

export interface MirrorImageStatus {
  name: string;
  /** Image id (status listings only). */
  id?: string;
  globalId: string;
  state: MirrorImageState;
  primary: boolean;
  /** The local site's entry, if reported. */
  local?: MirrorSiteStatus;
  /** The remote sites' entries. */
  remotes: MirrorSiteStatus[];
  sites: MirrorSiteStatus[];
}

export interface MirrorImageInfo {
  globalId: string;
  state: MirrorImageState;
  primary: boolean;
  /** Set while mirroring is enabled. */
  mode?: MirrorImageMode;
}

export interface MirroredImage extends MirrorImageInfo {
  id: string;
  /** '' if the image could not be found by id (e.g. being deleted). */
  name: string;
  mode: MirrorImageMode;
}

export interface MirrorDaemonInfo {
  /** Service-map key (the daemon's gid). */
  serviceId: string;
  /** Instance id serving this pool, once reported. */
  instanceId?: string;
  /** The daemon's client id as the CLI shows it, from its metadata. */
  clientId: string;
  hostname?: string;
  version?: string;
  leader?: boolean;
  health: MirrorHealth;
  callouts: string[];
}

export interface MirrorPoolStatus {
  health: MirrorHealth;
  daemonHealth: MirrorHealth;
  imageHealth: MirrorHealth;
  /** Images by replication state (local view), e.g. { replaying: 2, unknown: 1 }. */
  states: Partial<Record<MirrorStatusState, number>>;
  total: number;
  daemons: MirrorDaemonInfo[];
}

export interface ScheduleLevel {
  /** Omit for all pools (list/status only). */
  pool?: string;
  namespace?: string;
  image?: string;
}

export interface SnapshotScheduleItem {
  /** e.g. '6h', '30m', '1d'. */
  interval: string;
  /** Start time as the mgr stores it (e.g. '14:00:00'), or null. */
  startTime: string | null;
}

export interface SnapshotScheduleLevel {
  /** mgr level spec, e.g. 'rbd/', 'rbd/ns/', 'rbd/img'. */
  levelSpec: string;
  pool: string;
  namespace: string;
  /** '' for pool/namespace level schedules. */
  image: string;
  schedules: SnapshotScheduleItem[];
}

export interface ScheduledImage {
  /** 'pool/[namespace/]image' */
  spec: string;
  pool: string;
  namespace: string;
  image: string;
  /** Next scheduled mirror snapshot (UTC). */
  scheduleTime: Date;
}

export interface WaitOptions {
  /** Give up after this long (default 120000 ms) with ETIMEDOUT. */
  timeoutMs?: number;
  signal?: AbortSignal;
  /** Poll interval (default 500 ms). */
  pollMs?: number;
  /**
   * The image on the peer cluster, opened without readOnly. With it, snapshot mode watches the
   * non-primary snapshot's `complete` flag directly (exact); without it, the peer's status report
   * is used.
   */
  peer?: Image;
}

export interface SyncState {
  mode: MirrorImageMode;
  /** Snapshot mode: the primary mirror snapshot waited for. */
  snapshotId?: number;
  /** Journal mode: the peer's replay position when caught up. */
  entriesBehindPrimary?: number;
}

export type FailoverStep = 'check' | 'demote' | 'wait' | 'promote' | 'resync' | 'done';
export interface FailoverProgress {
  step: FailoverStep;
  message: string;
}

export interface FailoverOptions {
  /** Currently primary image (site to demote). */
  primary: Image;
  /** Non-primary image on the other site (to promote). */
  secondary: Image;
  /** Bound on the whole operation (default 120000 ms). */
  timeoutMs?: number;
  signal?: AbortSignal;
  pollMs?: number;
  onProgress?: (p: FailoverProgress) => void;
}

export interface FailbackOptions extends FailoverOptions {
  /**
   * Current primary is `secondary` (promoted during the outage, possibly by force); `primary` is
   * the original primary to make primary again. If `primary` is still (or again) primary too
   * (split-brain), or `resync` is true, it is demoted and resynced from `secondary` first.
   * Resync recreates the image on the original site: `primary` must not be open elsewhere, and
   * the handle given here is closed; reopen it afterwards (failback resolves to the new handle).
   */
  resync?: boolean;
}

// ---------------------------------------------------------------------------
// Raw enum values. The addon passes librbd's enums through as numbers; each table lists the
// names by raw value. A value the table does not know (from a newer librbd) is 'unknown',
// never another state.

// What callers may pass (checked before any native call).
export type SettableMirrorMode = 'disabled' | 'image' | 'pool';
export type SettableImageMode = Exclude<MirrorImageMode, 'unknown'>;
export type SettablePeerDirection = Exclude<MirrorPeerDirection, 'unknown'>;

/** rbd_mirror_mode_t; INIT_ONLY (3) is cls::rbd::MIRROR_MODE_INIT_ONLY (Squid), which librbd casts. */
const MIRROR_MODES: readonly MirrorMode[] = ['disabled', 'image', 'pool', 'init-only'];
/** rbd_mirror_image_mode_t */
export const IMAGE_MODES: readonly SettableImageMode[] = ['journal', 'snapshot'];
/** rbd_mirror_peer_direction_t */
export const PEER_DIRECTIONS: readonly SettablePeerDirection[] = ['rx-only', 'tx-only', 'rx-tx'];
/** rbd_mirror_image_state_t; CREATING (3) is cls::rbd::MIRROR_IMAGE_STATE_CREATING, cast by librbd. */
const IMAGE_STATES: readonly MirrorImageState[] = ['disabling', 'enabled', 'disabled', 'creating'];
/** rbd_mirror_image_status_state_t */
const STATUS_STATES: readonly MirrorStatusState[] = [
  'unknown', 'error', 'syncing', 'starting_replay', 'replaying', 'stopping_replay', 'stopped',
];
/** The pool modes setMode() accepts. */
export const SETTABLE_MODES: readonly SettableMirrorMode[] = ['disabled', 'image', 'pool'];

function named<T extends string>(table: readonly T[], raw: number): T | 'unknown' {
  return (Number.isInteger(raw) ? table[raw] : undefined) ?? 'unknown';
}

export const mirrorModeName = (raw: number): MirrorMode => named(MIRROR_MODES, raw);
export const imageModeName = (raw: number): MirrorImageMode => named(IMAGE_MODES, raw);
export const peerDirectionName = (raw: number): MirrorPeerDirection => named(PEER_DIRECTIONS, raw);
export const imageStateName = (raw: number): MirrorImageState => named(IMAGE_STATES, raw);
export const statusStateName = (raw: number): MirrorStatusState => named(STATUS_STATES, raw);

export const mirrorModeRaw = (mode: SettableMirrorMode): number => MIRROR_MODES.indexOf(mode);
export const imageModeRaw = (mode: SettableImageMode): number => IMAGE_MODES.indexOf(mode);
export const peerDirectionRaw = (direction: SettablePeerDirection): number => PEER_DIRECTIONS.indexOf(direction);

export function checkEnum<T extends string>(v: unknown, what: string, allowed: readonly T[]): T {
  if (typeof v !== 'string' || !allowed.includes(v as T)) {
    throw new TypeError(`${what} must be one of ${allowed.map((a) => `'${a}'`).join(', ')}, got ${typeof v === 'string' ? `'${v}'` : describe(v)}`);
  }
  return v as T;
}
