// RBD mirroring: pool/site configuration, peers, status, image operations,
// mirror-snapshot schedules (mgr rbd_support) and failover orchestration.
import { native, type ClusterHandle, type ImageHandle, type IoCtxHandle } from '../binding/index.js';
import { codedError, isRbdError } from '../core/errors.js';
import { checkBool, checkName, checkOptions, checkSignal, checkUint, describe } from '../core/validate.js';
import type { Image } from '../core/image.js';
import type { Pool } from '../core/pool.js';
import type { Rados } from '../core/rados.js';
import { kHandle, kTrack } from '../core/internal.js';

// ---------------------------------------------------------------------------
// Types

export type MirrorMode = 'disabled' | 'image' | 'pool';
export type MirrorImageMode = 'journal' | 'snapshot';
export type MirrorPeerDirection = 'rx-only' | 'tx-only' | 'rx-tx';
/** State of mirroring on an image (librbd's rbd_mirror_image_state_t). */
export type MirrorImageState = 'disabling' | 'enabled' | 'disabled';
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

// ---------------------------------------------------------------------------
// Native surface (kept here so the core typing file stays untouched)

interface NativeSiteStatus {
  mirrorUuid: string;
  state: MirrorStatusState;
  description: string;
  lastUpdate: number;
  up: boolean;
}
interface NativeGlobalStatus {
  id?: string;
  name: string;
  globalId: string;
  state: MirrorImageState;
  primary: boolean;
  sites: NativeSiteStatus[];
}
interface NativePeer {
  uuid: string;
  direction: number;
  siteName: string;
  mirrorUuid: string;
  clientName: string;
  lastSeen: number;
  monHost: string;
  hasKey: boolean;
}
interface MirrorNative {
  mirrorSiteNameGet(c: ClusterHandle): Promise<string>;
  mirrorSiteNameSet(c: ClusterHandle, name: string): Promise<void>;
  mirrorModeGet(p: IoCtxHandle): Promise<number>;
  mirrorModeSet(p: IoCtxHandle, mode: number): Promise<void>;
  mirrorUuidGet(p: IoCtxHandle): Promise<string>;
  mirrorBootstrapCreate(p: IoCtxHandle): Promise<string>;
  mirrorBootstrapImport(p: IoCtxHandle, direction: number, token: string): Promise<void>;
  mirrorPeerAdd(p: IoCtxHandle, direction: number, site: string, client: string, monHost?: string, key?: string): Promise<string>;
  mirrorPeerRemove(p: IoCtxHandle, uuid: string): Promise<void>;
  mirrorPeerSet(p: IoCtxHandle, uuid: string, what: 'name' | 'client' | 'direction' | 'monHost' | 'key', value: string | number): Promise<void>;
  mirrorPeerList(p: IoCtxHandle): Promise<NativePeer[]>;
  mirrorStatusSummary(p: IoCtxHandle): Promise<Partial<Record<MirrorStatusState, number>>>;
  mirrorGlobalStatusList(p: IoCtxHandle, start: string, max: number): Promise<NativeGlobalStatus[]>;
  mirrorImageInfoList(
    p: IoCtxHandle,
    mode: number | null,
    start: string,
    max: number,
  ): Promise<{ id: string; mode: MirrorImageMode; globalId: string; state: MirrorImageState; primary: boolean }[]>;
  mirrorImageOp(i: ImageHandle, op: 'enable' | 'disable' | 'promote' | 'demote' | 'resync', arg?: number | boolean): Promise<void>;
  mirrorCreateSnapshot(i: ImageHandle): Promise<number>;
  mirrorGetInfo(i: ImageHandle): Promise<MirrorImageInfo>;
  mirrorGetMode(i: ImageHandle): Promise<MirrorImageMode>;
  mirrorGetGlobalStatus(i: ImageHandle): Promise<NativeGlobalStatus>;
}
const m = native as unknown as MirrorNative;

const MODES: readonly MirrorMode[] = ['disabled', 'image', 'pool'];
const IMAGE_MODES: readonly MirrorImageMode[] = ['journal', 'snapshot'];
const DIRECTIONS: readonly MirrorPeerDirection[] = ['rx-only', 'tx-only', 'rx-tx'];

function checkEnum<T extends string>(v: unknown, what: string, allowed: readonly T[]): T {
  if (typeof v !== 'string' || !allowed.includes(v as T)) {
    throw new TypeError(`${what} must be one of ${allowed.map((a) => `'${a}'`).join(', ')}, got ${typeof v === 'string' ? `'${v}'` : describe(v)}`);
  }
  return v as T;
}

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
function checkUuid(v: unknown, what = 'peer uuid'): string {
  checkName(v, what);
  if (!UUID_RE.test(v as string)) throw new TypeError(`${what} must be a uuid, got '${String(v).slice(0, 64)}'`);
  return v as string;
}

/** Base64 cephx key: validated without ever echoing it. */
function checkKey(v: unknown): string {
  if (typeof v !== 'string') throw new TypeError(`key must be a string, got ${describe(v)}`);
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(v) || v.length < 16 || v.length > 256) {
    throw new TypeError('key must be a base64 cephx secret (value not shown)');
  }
  return v;
}

// ---------------------------------------------------------------------------
// Site name (per cluster)

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

// ---------------------------------------------------------------------------
// Description parsing

function num(v: unknown): number | undefined {
  return typeof v === 'number' && Number.isFinite(v) ? v : undefined;
}

function position(v: unknown): JournalPosition | undefined {
  if (v === null || typeof v !== 'object') return undefined;
  const o = v as Record<string, unknown>;
  return { entryTid: num(o.entry_tid) ?? 0, objectNumber: num(o.object_number) ?? 0, tagTid: num(o.tag_tid) ?? 0 };
}

/**
 * Splits a site status description ('replaying, {"bytes_per_second":…}') into its text and
 * the typed replay JSON (undefined when there is none or it does not parse).
 */
export function parseMirrorDescription(description: string): { text: string; replay?: MirrorReplayStatus } {
  const i = description.indexOf('{');
  if (i < 0) return { text: description.trim() };
  const text = description.slice(0, i).replace(/[,\s]+$/, '').trim();
  let raw: Record<string, unknown>;
  try {
    const parsed: unknown = JSON.parse(description.slice(i));
    if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) return { text: description.trim() };
    raw = parsed as Record<string, unknown>;
  } catch {
    return { text: description.trim() };
  }
  const r: MirrorReplayStatus = { raw };
  if (typeof raw.replay_state === 'string') r.replayState = raw.replay_state;
  const set = <K extends keyof MirrorReplayStatus>(k: K, v: MirrorReplayStatus[K] | undefined) => {
    if (v !== undefined) r[k] = v;
  };
  set('bytesPerSecond', num(raw.bytes_per_second));
  set('bytesPerSnapshot', num(raw.bytes_per_snapshot));
  set('lastSnapshotBytes', num(raw.last_snapshot_bytes));
  set('lastSnapshotSyncSeconds', num(raw.last_snapshot_sync_seconds));
  set('localSnapshotTimestamp', num(raw.local_snapshot_timestamp));
  set('remoteSnapshotTimestamp', num(raw.remote_snapshot_timestamp));
  set('syncingSnapshotTimestamp', num(raw.syncing_snapshot_timestamp));
  set('syncingPercent', num(raw.syncing_percent));
  set('entriesBehindPrimary', num(raw.entries_behind_primary));
  set('entriesPerSecond', num(raw.entries_per_second));
  set('primaryPosition', position(raw.primary_position));
  set('nonPrimaryPosition', position(raw.non_primary_position));
  return { text, replay: r };
}

function toSiteStatus(s: NativeSiteStatus, localSite: string, peers: Map<string, string>): MirrorSiteStatus {
  const local = s.mirrorUuid === '';
  const { text, replay } = parseMirrorDescription(s.description);
  const out: MirrorSiteStatus = {
    siteName: local ? localSite : (peers.get(s.mirrorUuid) ?? ''),
    mirrorUuid: s.mirrorUuid,
    local,
    state: s.state,
    up: s.up,
    summary: `${s.up ? 'up' : 'down'}+${s.state}`,
    description: text,
    rawDescription: s.description,
  };
  if (s.lastUpdate > 0) out.lastUpdate = new Date(s.lastUpdate * 1000);
  if (replay) out.replay = replay;
  return out;
}

function toImageStatus(g: NativeGlobalStatus, localSite: string, peers: Map<string, string>): MirrorImageStatus {
  const sites = g.sites.map((s) => toSiteStatus(s, localSite, peers));
  const st: MirrorImageStatus = {
    name: g.name,
    globalId: g.globalId,
    state: g.state,
    primary: g.primary,
    remotes: sites.filter((s) => !s.local),
    sites,
  };
  if (g.id !== undefined) st.id = g.id;
  const local = sites.find((s) => s.local);
  if (local) st.local = local;
  return st;
}

const HEALTH_ORDER: MirrorHealth[] = ['OK', 'UNKNOWN', 'WARNING', 'ERROR'];
function worst(a: MirrorHealth, b: MirrorHealth): MirrorHealth {
  return HEALTH_ORDER.indexOf(a) >= HEALTH_ORDER.indexOf(b) ? a : b;
}

// ---------------------------------------------------------------------------
// Pool

/** Mirroring operations on one pool (and namespace). */
export class MirrorPool {
  constructor(readonly pool: Pool) {}

  private run<T>(fn: (h: IoCtxHandle) => Promise<T>): Promise<T> {
    return this.pool[kTrack](() => fn(this.pool[kHandle]));
  }

  async getMode(): Promise<MirrorMode> {
    const mode = await this.run((h) => m.mirrorModeGet(h));
    return MODES[mode] ?? 'disabled';
  }

  /** 'image' mirrors images enabled one by one; 'pool' mirrors every journaling image. */
  async setMode(mode: MirrorMode): Promise<void> {
    const n = MODES.indexOf(checkEnum(mode, 'mirror mode', MODES));
    await this.run((h) => m.mirrorModeSet(h, n));
  }

  /** This pool's mirror uuid (how peers identify this site in status entries). */
  getUuid(): Promise<string> {
    return this.run((h) => m.mirrorUuidGet(h));
  }

  /** A token a peer cluster imports to mirror with this one. It contains a key: keep it secret. */
  createBootstrapToken(): Promise<string> {
    return this.run((h) => m.mirrorBootstrapCreate(h));
  }

  /** Imports a peer's bootstrap token (default direction 'rx-tx'). */
  async importBootstrapToken(token: string, options: { direction?: 'rx-only' | 'rx-tx' } = {}): Promise<void> {
    if (typeof token !== 'string') throw new TypeError(`token must be a string, got ${describe(token)}`);
    if (token.length === 0) throw new RangeError('token must not be empty');
    if (token.includes('\0')) throw new TypeError('token must not contain NUL');
    const o = checkOptions<{ direction?: string }>(options, 'importBootstrapToken options', ['direction']);
    const direction = o.direction === undefined ? 'rx-tx' : checkEnum(o.direction, 'direction', ['rx-only', 'rx-tx'] as const);
    const op = 'import mirror bootstrap token';
    // Decode it here, so a garbled token gets a precise error (the token itself is never shown).
    let peer: { fsid: string; monHost: string } | undefined;
    try {
      const t = JSON.parse(Buffer.from(token.trim(), 'base64').toString('utf8')) as Record<string, unknown>;
      if (['fsid', 'client_id', 'key', 'mon_host'].every((k) => typeof t[k] === 'string' && t[k] !== '')) {
        peer = { fsid: t.fsid as string, monHost: t.mon_host as string };
      }
    } catch { /* not base64 JSON */ }
    if (!peer) {
      throw codedError('EINVAL', `${op} '${this.pool.spec}' failed: the token is not a valid bootstrap token (token not shown)`, {
        errno: -22,
        operation: op,
        pool: this.pool.name,
      });
    }
    try {
      await this.run((h) => m.mirrorBootstrapImport(h, DIRECTIONS.indexOf(direction), token.trim()));
    } catch (e) {
      // The native message never holds the token; name the peer it could not be used with.
      (e as Error).message += ` (peer site ${peer.fsid}, mon host ${peer.monHost.slice(0, 200)})`;
      throw e;
    }
  }

  async listPeers(): Promise<MirrorPeer[]> {
    const list = await this.run((h) => m.mirrorPeerList(h));
    return list.map((p) => {
      const peer: MirrorPeer = {
        uuid: p.uuid,
        direction: DIRECTIONS[p.direction] ?? 'rx-tx',
        siteName: p.siteName,
        mirrorUuid: p.mirrorUuid,
        clientName: p.clientName,
        keySet: p.hasKey,
      };
      if (p.lastSeen > 0) peer.lastSeen = new Date(p.lastSeen * 1000);
      if (p.monHost) peer.monHost = p.monHost;
      return peer;
    });
  }

  /**
   * Adds a peer site: `spec` is 'client.<id>@<site>' (or '<site>' for client.admin), as with
   * `rbd mirror pool peer add`. Returns the new peer's uuid.
   */
  async addPeer(spec: string, options: AddPeerOptions = {}): Promise<string> {
    const { client, site } = parsePeerSpec(spec);
    const o = checkOptions<AddPeerOptions>(options, 'addPeer options', ['direction', 'monHost', 'key']);
    const direction = o.direction === undefined ? 'rx-tx' : checkEnum(o.direction, 'direction', ['rx-only', 'rx-tx'] as const);
    const monHost = o.monHost === undefined ? undefined : checkName(o.monHost, 'monHost');
    const key = o.key === undefined ? undefined : checkKey(o.key);
    return this.run((h) => m.mirrorPeerAdd(h, DIRECTIONS.indexOf(direction), site, client, monHost, key));
  }

  /** Removes a peer (ENOENT for an unknown uuid). */
  async removePeer(uuid: string): Promise<void> {
    checkUuid(uuid);
    await this.run((h) => m.mirrorPeerRemove(h, uuid));
  }

  async setPeerDirection(uuid: string, direction: MirrorPeerDirection): Promise<void> {
    checkUuid(uuid);
    const d = DIRECTIONS.indexOf(checkEnum(direction, 'direction', DIRECTIONS));
    await this.run((h) => m.mirrorPeerSet(h, uuid, 'direction', d));
  }

  /** Sets the peer's site (cluster) name. */
  async setPeerSiteName(uuid: string, siteName: string): Promise<void> {
    checkUuid(uuid);
    checkName(siteName, 'site name', { forbid: '@' });
    await this.run((h) => m.mirrorPeerSet(h, uuid, 'name', siteName));
  }

  /** Sets the client the local rbd-mirror uses on the peer ('client.<id>' or '<id>'). */
  async setPeerClient(uuid: string, client: string): Promise<void> {
    checkUuid(uuid);
    const c = checkName(client, 'client name', { forbid: '@' });
    await this.run((h) => m.mirrorPeerSet(h, uuid, 'client', c.startsWith('client.') ? c : `client.${c}`));
  }

  async setPeerMonHost(uuid: string, monHost: string): Promise<void> {
    checkUuid(uuid);
    checkName(monHost, 'monHost');
    await this.run((h) => m.mirrorPeerSet(h, uuid, 'monHost', monHost));
  }

  async setPeerKey(uuid: string, key: string): Promise<void> {
    checkUuid(uuid);
    const k = checkKey(key);
    await this.run((h) => m.mirrorPeerSet(h, uuid, 'key', k));
  }

  /**
   * Pool summary as `rbd mirror pool status`: image counts by state, the image health derived
   * from them, and the health of this cluster's rbd-mirror daemons (from the mgr service map).
   */
  async getStatusSummary(): Promise<MirrorPoolStatus> {
    const states = await this.run((h) => m.mirrorStatusSummary(h));
    let total = 0;
    let imageHealth: MirrorHealth = 'OK';
    for (const [state, count] of Object.entries(states) as [MirrorStatusState, number][]) {
      total += count;
      if (count === 0) continue;
      if (state === 'error') imageHealth = worst(imageHealth, 'ERROR');
      else if (state !== 'replaying' && state !== 'stopped') imageHealth = worst(imageHealth, 'WARNING');
    }
    const daemons = await this.mirrorDaemons();
    let daemonHealth: MirrorHealth = daemons.length === 0 ? 'WARNING' : 'OK';
    for (const d of daemons) daemonHealth = worst(daemonHealth, d.health);
    return { health: worst(daemonHealth, imageHealth), daemonHealth, imageHealth, states, total, daemons };
  }

  private async mirrorDaemons(): Promise<MirrorDaemonInfo[]> {
    // Like the CLI: daemons and their metadata from the service map, per-pool health from
    // the status each daemon reports (a JSON string keyed by pool id).
    type Daemon = { metadata?: Record<string, string> };
    type PoolStatus = { leader?: boolean; instance_id?: string; callouts?: Record<string, { level?: string; text?: string }> };
    const rados = this.pool.rados;
    const [dump, statuses] = await Promise.all([
      rados.commandJson<{ services?: Record<string, { daemons?: Record<string, Daemon | string> }> }>('mgr', { prefix: 'service dump' }),
      rados.commandJson<Record<string, Record<string, { status?: { json?: string } }>>>('mgr', { prefix: 'service status' }),
    ]);
    const daemons = dump?.services?.['rbd-mirror']?.daemons ?? {};
    const poolId = String(this.pool.id);
    const out: MirrorDaemonInfo[] = [];
    for (const [key, d] of Object.entries(daemons)) {
      if (key === 'summary' || typeof d !== 'object' || d === null) continue;
      const info: MirrorDaemonInfo = {
        serviceId: key,
        clientId: d.metadata?.id ?? '',
        health: 'UNKNOWN',
        callouts: [],
      };
      if (d.metadata?.hostname) info.hostname = d.metadata.hostname;
      if (d.metadata?.ceph_version_short) info.version = d.metadata.ceph_version_short;
      let status: Record<string, PoolStatus> = {};
      try {
        const json = statuses?.['rbd-mirror']?.[key]?.status?.json;
        if (json) status = JSON.parse(json);
      } catch { /* unparsable status: health stays UNKNOWN */ }
      const ps = status[poolId];
      if (ps) {
        info.health = 'OK';
        if (ps.instance_id) info.instanceId = ps.instance_id;
        if (ps.leader !== undefined) info.leader = ps.leader;
        for (const c of Object.values(ps.callouts ?? {})) {
          info.callouts.push(c.text ?? '');
          info.health = worst(info.health, c.level === 'error' ? 'ERROR' : 'WARNING');
        }
      } else {
        // Running, but not (yet) serving this pool.
        info.health = 'WARNING';
      }
      out.push(info);
    }
    return out;
  }

  /** Global status of every mirrored image in the pool (all pages). */
  async listImageStatus(options: { pageSize?: number } = {}): Promise<MirrorImageStatus[]> {
    const o = checkOptions<{ pageSize?: number }>(options, 'listImageStatus options', ['pageSize']);
    const pageSize = o.pageSize === undefined ? 256 : checkUint(o.pageSize, 'pageSize', { min: 1, max: 1024 });
    const [localSite, peers] = await this.siteNames();
    const out: MirrorImageStatus[] = [];
    let start = '';
    for (;;) {
      const page = await this.run((h) => m.mirrorGlobalStatusList(h, start, pageSize));
      for (const g of page) out.push(toImageStatus(g, localSite, peers));
      if (page.length < pageSize) break;
      start = page[page.length - 1].id!;
    }
    return out;
  }

  /** Images with mirroring enabled (all pages), optionally only those of one mode. */
  async listMirroredImages(options: { mode?: MirrorImageMode; pageSize?: number } = {}): Promise<MirroredImage[]> {
    const o = checkOptions<{ mode?: MirrorImageMode; pageSize?: number }>(options, 'listMirroredImages options', ['mode', 'pageSize']);
    const mode = o.mode === undefined ? null : IMAGE_MODES.indexOf(checkEnum(o.mode, 'mode', IMAGE_MODES));
    const pageSize = o.pageSize === undefined ? 256 : checkUint(o.pageSize, 'pageSize', { min: 1, max: 1024 });
    const names = new Map((await this.pool.listImageSpecs()).map((s) => [s.id, s.name]));
    const out: MirroredImage[] = [];
    let start = '';
    for (;;) {
      const page = await this.run((h) => m.mirrorImageInfoList(h, mode, start, pageSize));
      for (const e of page) out.push({ ...e, name: names.get(e.id) ?? '' });
      if (page.length < pageSize) break;
      start = page[page.length - 1].id;
    }
    return out;
  }

  /** @internal local site name and peer mirror uuid → site name. */
  async siteNames(): Promise<[string, Map<string, string>]> {
    const [local, peers] = await Promise.all([getSiteName(this.pool.rados), this.listPeers().catch(() => [] as MirrorPeer[])]);
    return [local, new Map(peers.filter((p) => p.mirrorUuid).map((p) => [p.mirrorUuid, p.siteName]))];
  }
}

export function mirrorPool(pool: Pool): MirrorPool {
  if (pool === null || typeof pool !== 'object' || typeof (pool as Pool)[kTrack] !== 'function') {
    throw new TypeError(`pool must be a Pool, got ${describe(pool)}`);
  }
  return new MirrorPool(pool);
}

function parsePeerSpec(spec: unknown): { client: string; site: string } {
  checkName(spec, 'peer spec');
  const s = spec as string;
  const at = s.lastIndexOf('@');
  const client = at < 0 ? 'client.admin' : s.slice(0, at);
  const site = at < 0 ? s : s.slice(at + 1);
  if (client === '' || site === '' || site.includes('/') || client.includes('@')) {
    throw new TypeError(`peer spec must be 'client.<id>@<site>' or '<site>', got '${s.slice(0, 128)}'`);
  }
  return { client: client.startsWith('client.') ? client : `client.${client}`, site };
}

// ---------------------------------------------------------------------------
// Image

function imageRun<T>(image: Image, fn: (h: ImageHandle) => Promise<T>): Promise<T> {
  if (image === null || typeof image !== 'object' || typeof (image as Image)[kTrack] !== 'function') {
    return Promise.reject(new TypeError(`image must be an Image, got ${describe(image)}`));
  }
  return image[kTrack](() => fn(image[kHandle]));
}

/**
 * librbd answers ENOENT (promote) or EINVAL (others) on images without mirroring; give every
 * image-level operation the same EINVAL with a message saying why.
 */
async function notEnabled(image: Image, e: unknown): Promise<unknown> {
  if (!isRbdError(e, 'ENOENT') && !isRbdError(e, 'EINVAL')) return e;
  const info = await getMirrorInfo(image).catch(() => undefined);
  if (!info || info.state === 'enabled') return e;
  const err = e as Error & { code: string; errno: number };
  if (err.code === 'ENOENT') {
    err.code = 'EINVAL';
    err.errno = -22;
    err.message = err.message.replace(/^ENOENT: (.*) failed: .*$/s, 'EINVAL: $1 failed');
  }
  err.message += `: mirroring is not enabled on the image (state ${info.state})`;
  return err;
}

/**
 * Enables mirroring of an image. Journal mode needs the exclusive-lock and journaling features:
 * like the CLI, librbd turns them on when missing; if that is not possible (e.g. image opened
 * read-only) the error says which features to enable.
 */
export async function enableMirroring(image: Image, mode: MirrorImageMode): Promise<void> {
  const md = IMAGE_MODES.indexOf(checkEnum(mode, 'mirror image mode', IMAGE_MODES));
  if (image?.readOnly) {
    throw codedError('EROFS', `enable mirroring '${image.spec}' failed: the image is open read-only`, { operation: 'enable mirroring' });
  }
  try {
    await imageRun(image, (h) => m.mirrorImageOp(h, 'enable', md));
  } catch (e) {
    if (isRbdError(e, 'EINVAL')) {
      const hint = await enableHint(image, mode).catch(() => '');
      if (hint) (e as Error).message += ` (${hint})`;
    }
    throw e;
  }
}

async function enableHint(image: Image, mode: MirrorImageMode): Promise<string> {
  const poolMode = await mirrorPool(image.pool).getMode();
  if (poolMode === 'disabled') return `mirroring is disabled on pool '${image.pool.spec}': set the pool mode to 'image' first`;
  if (poolMode === 'pool') return `pool '${image.pool.spec}' mirrors in 'pool' mode: per-image enable needs 'image' mode`;
  if (mode === 'journal') {
    const st = await image.stat();
    const missing = (['exclusive-lock', 'journaling'] as const).filter((f) => !st.features.includes(f));
    if (missing.length) return `journal mode needs the ${missing.join(' and ')} feature(s): enable them with updateFeatures()`;
  }
  return '';
}

/** Disables mirroring; `force` also on a non-primary image (deleting it on this site when rbd-mirror cleans up). */
export async function disableMirroring(image: Image, options: { force?: boolean } = {}): Promise<void> {
  const o = checkOptions<{ force?: boolean }>(options, 'disableMirroring options', ['force']);
  const force = checkBool(o.force, 'force') ?? false;
  await imageRun(image, (h) => m.mirrorImageOp(h, 'disable', force));
}

export function getMirrorInfo(image: Image): Promise<MirrorImageInfo> {
  return imageRun(image, (h) => m.mirrorGetInfo(h));
}

/** The image's mirroring mode (EINVAL when mirroring is not enabled on it). */
export async function getMirrorMode(image: Image): Promise<MirrorImageMode> {
  // librbd reports a mode even for images that are not mirrored: check the state first.
  const info = await getMirrorInfo(image);
  if (info.state !== 'enabled' || !info.mode) {
    throw codedError('EINVAL', `get mirror image mode '${image.spec}' failed: mirroring is not enabled on the image (state ${info.state})`, {
      errno: -22,
      operation: 'get mirror image mode',
      pool: image.pool.name,
      image: image.name,
    });
  }
  return info.mode;
}

/**
 * Promotes an image to primary. Without `force` this fails with EBUSY until the demotion of the
 * old primary has been replicated here; `force` promotes anyway (split-brain unless the old
 * primary is demoted and resynced afterwards). EINVAL if already primary.
 */
const FORCE_PROMOTE_RETRY_MS = 15_000;

export async function promoteImage(image: Image, options: { force?: boolean } = {}): Promise<void> {
  const o = checkOptions<{ force?: boolean }>(options, 'promoteImage options', ['force']);
  const force = checkBool(o.force, 'force') ?? false;
  try {
    const deadline = Date.now() + FORCE_PROMOTE_RETRY_MS;
    for (;;) {
      try {
        await imageRun(image, (h) => m.mirrorImageOp(h, 'promote', force));
        break;
      } catch (e) {
        // A forced promote asks the local rbd-mirror for the image's lock; while it is busy
        // replaying it may refuse once (EROFS). It gives the lock up for force promotion.
        if (!force || !isRbdError(e, 'EROFS') || Date.now() > deadline) throw e;
        await sleep(500);
      }
    }
  } catch (e) {
    const info = await getMirrorInfo(image).catch(() => undefined);
    if (info && info.state !== 'enabled') throw await notEnabled(image, e);
    if (isRbdError(e, 'EINVAL')) {
      if (info?.primary) (e as Error).message += ': the image is already primary';
    } else if (isRbdError(e, 'EBUSY') && !force) {
      (e as Error).message += ': the image is primary on a peer, or its demotion has not been replicated yet';
    }
    throw e;
  }
}

export async function demoteImage(image: Image): Promise<void> {
  try {
    await imageRun(image, (h) => m.mirrorImageOp(h, 'demote'));
  } catch (e) {
    const info = await getMirrorInfo(image).catch(() => undefined);
    if (info && info.state !== 'enabled') throw await notEnabled(image, e);
    if (isRbdError(e, 'EINVAL') && info && !info.primary) (e as Error).message += ': the image is not primary';
    throw e;
  }
}

/** Flags a non-primary image for a full resync from the primary (rbd-mirror recreates it). */
export async function resyncImage(image: Image): Promise<void> {
  try {
    await imageRun(image, (h) => m.mirrorImageOp(h, 'resync'));
  } catch (e) {
    throw await notEnabled(image, e);
  }
}

/** Creates a mirror snapshot (snapshot mode, primary image); returns its snapshot id. */
export async function createMirrorSnapshot(image: Image): Promise<number> {
  try {
    return await imageRun(image, (h) => m.mirrorCreateSnapshot(h));
  } catch (e) {
    throw await notEnabled(image, e);
  }
}

/** Global status: each site's state, up/down, last update and parsed replay description. */
export async function getMirrorStatus(image: Image): Promise<MirrorImageStatus> {
  const g = await imageRun(image, (h) => m.mirrorGetGlobalStatus(h));
  if (g.state !== 'enabled') {
    // As `rbd mirror image status`: there is no status to show.
    throw codedError('EINVAL', `get mirror image status '${image.spec}' failed: mirroring is not enabled on the image (state ${g.state})`, {
      errno: -22,
      operation: 'get mirror image status',
      pool: image.pool.name,
      image: image.name,
    });
  }
  const [localSite, peers] = await mirrorPool(image.pool).siteNames();
  return toImageStatus(g, localSite, peers);
}

// ---------------------------------------------------------------------------
// Snapshot schedules (mgr rbd_support)

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

const INTERVAL_RE = /^[1-9][0-9]*[mhd]$/;

function levelSpec(level: ScheduleLevel, what: string, requirePool: boolean): string {
  const o = checkOptions<ScheduleLevel>(level, what, ['pool', 'namespace', 'image', 'interval', 'startTime', 'recursive']);
  if (o.pool === undefined) {
    if (requirePool) throw new TypeError(`${what}: pool is required`);
    if (o.namespace !== undefined || o.image !== undefined) throw new TypeError(`${what}: namespace/image need a pool`);
    return '';
  }
  const pool = checkName(o.pool, 'pool', { forbid: '/@' });
  const ns = o.namespace === undefined || o.namespace === '' ? '' : checkName(o.namespace, 'namespace', { forbid: '/@' });
  if (o.image === undefined) return ns ? `${pool}/${ns}/` : `${pool}/`;
  const image = checkName(o.image, 'image', { forbid: '/@' });
  return ns ? `${pool}/${ns}/${image}` : `${pool}/${image}`;
}

function pickLevel(o: ScheduleLevel): ScheduleLevel {
  const r: ScheduleLevel = {};
  if (o.pool !== undefined) r.pool = o.pool;
  if (o.namespace !== undefined) r.namespace = o.namespace;
  if (o.image !== undefined) r.image = o.image;
  return r;
}

function splitLevel(name: string): { pool: string; namespace: string; image: string } {
  const parts = name.split('/');
  if (parts.length === 2) return { pool: parts[0], namespace: '', image: parts[1] };
  if (parts.length >= 3) return { pool: parts[0], namespace: parts[1], image: parts.slice(2).join('/') };
  return { pool: name, namespace: '', image: '' };
}

function checkInterval(v: unknown): string {
  if (typeof v !== 'string' || !INTERVAL_RE.test(v)) {
    throw new TypeError(`interval must be like '30m', '6h' or '1d', got ${typeof v === 'string' ? `'${v}'` : describe(v)}`);
  }
  return v;
}

function checkStartTime(v: unknown): string | undefined {
  if (v === undefined) return undefined;
  if (typeof v !== 'string' || !/^[0-9T:+\-. Z]{4,40}$/.test(v)) {
    throw new TypeError(`startTime must be a time like '14:00' or an ISO 8601 date-time, got ${describe(v)}`);
  }
  return v;
}

/** Adds a mirror-snapshot schedule at pool, namespace or image level. */
export async function addSnapshotSchedule(
  rados: Rados,
  options: ScheduleLevel & { interval: string; startTime?: string },
): Promise<void> {
  const spec = levelSpec(options, 'addSnapshotSchedule options', true);
  const interval = checkInterval(options.interval);
  const startTime = checkStartTime(options.startTime);
  const cmd: Record<string, unknown> = { prefix: 'rbd mirror snapshot schedule add', level_spec: spec, interval };
  if (startTime !== undefined) cmd.start_time = startTime;
  await rados.command('mgr', cmd);
}

/** Removes schedules at a level: the one matching interval (and startTime), or all of them. */
export async function removeSnapshotSchedule(
  rados: Rados,
  options: ScheduleLevel & { interval?: string; startTime?: string },
): Promise<void> {
  const spec = levelSpec(options, 'removeSnapshotSchedule options', true);
  const cmd: Record<string, unknown> = { prefix: 'rbd mirror snapshot schedule remove', level_spec: spec };
  if (options.interval !== undefined) cmd.interval = checkInterval(options.interval);
  const st = checkStartTime(options.startTime);
  if (st !== undefined) {
    if (options.interval === undefined) throw new TypeError('startTime needs an interval');
    cmd.start_time = st;
  }
  // The mgr silently accepts removing a schedule that does not exist (unless the level never
  // had one): check first so a typo is an error, as users expect.
  const level = (await listSnapshotSchedules(rados, { ...pickLevel(options) })).find((l) => l.levelSpec === spec);
  const found = level?.schedules.some((x) => options.interval === undefined || x.interval === options.interval) ?? false;
  if (!found) {
    throw codedError('ENOENT', `remove mirror snapshot schedule '${spec}'${options.interval ? ` ${options.interval}` : ''} failed: no such schedule`, {
      errno: -2,
      operation: 'remove mirror snapshot schedule',
    });
  }
  await rados.command('mgr', cmd);
}

/** '30m' | '6h' | '1d' (the mgr's interval syntax) in minutes; unknown forms sort last. */
function intervalMinutes(interval: string): number {
  const m = /^(\d+)([mhd])$/.exec(interval);
  if (!m) return Number.MAX_SAFE_INTEGER;
  return Number(m[1]) * { m: 1, h: 60, d: 1440 }[m[2] as 'm' | 'h' | 'd'];
}

/** Schedules at a level (all levels below it too with `recursive`), sorted by level spec, then interval. */
export async function listSnapshotSchedules(
  rados: Rados,
  options: ScheduleLevel & { recursive?: boolean } = {},
): Promise<SnapshotScheduleLevel[]> {
  const spec = levelSpec(options, 'listSnapshotSchedules options', false);
  const recursive = checkBool(options.recursive, 'recursive') ?? false;
  const out = await rados.commandJson<Record<string, { name: string; schedule: { interval: string; start_time: string | null }[] }>>(
    'mgr',
    { prefix: 'rbd mirror snapshot schedule list', level_spec: spec },
  );
  const levels: SnapshotScheduleLevel[] = Object.values(out ?? {}).map((l) => ({
    levelSpec: l.name,
    ...splitLevel(l.name),
    // The mgr keeps schedules in a set: order them (shortest interval first) so results are stable.
    schedules: l.schedule
      .map((s) => ({ interval: s.interval, startTime: s.start_time || null }))
      .sort((x, y) => intervalMinutes(x.interval) - intervalMinutes(y.interval) || (x.startTime ?? '').localeCompare(y.startTime ?? '')),
  }));
  const wanted = recursive || spec === '' ? levels : levels.filter((l) => l.levelSpec === spec);
  return wanted.sort((a, b) => (a.levelSpec < b.levelSpec ? -1 : a.levelSpec > b.levelSpec ? 1 : 0));
}

/** Images with a pending scheduled mirror snapshot, and when it is due. */
export async function snapshotScheduleStatus(rados: Rados, options: ScheduleLevel = {}): Promise<ScheduledImage[]> {
  const spec = levelSpec(options, 'snapshotScheduleStatus options', false);
  const cmd: Record<string, unknown> = { prefix: 'rbd mirror snapshot schedule status' };
  if (spec) cmd.level_spec = spec;
  const out = await rados.commandJson<{ scheduled_images?: { image: string; schedule_time: string }[] }>('mgr', cmd);
  return (out?.scheduled_images ?? []).map((s) => ({
    spec: s.image,
    ...splitLevel(s.image),
    // The mgr prints UTC without a zone.
    scheduleTime: new Date(`${s.schedule_time.replace(' ', 'T')}Z`),
  }));
}

// ---------------------------------------------------------------------------
// Orchestration

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

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(abortError(signal));
    const t = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(t);
      reject(abortError(signal!));
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

function abortError(signal: AbortSignal): Error {
  const e = codedError('ABORT_ERR', 'mirror wait aborted');
  e.name = 'AbortError';
  (e as Error & { cause?: unknown }).cause = signal.reason;
  return e;
}

function checkWait(options: WaitOptions | undefined, what: string): Required<Pick<WaitOptions, 'timeoutMs' | 'pollMs'>> & WaitOptions {
  const o = checkOptions<WaitOptions>(options, what, ['timeoutMs', 'signal', 'pollMs', 'peer']);
  return {
    ...o,
    timeoutMs: o.timeoutMs === undefined ? 120_000 : checkUint(o.timeoutMs, 'timeoutMs', { min: 1 }),
    pollMs: o.pollMs === undefined ? 500 : checkUint(o.pollMs, 'pollMs', { min: 10, max: 60_000 }),
    signal: checkSignal(o.signal),
  };
}

/** Polls `check` until it returns a value, bounded by timeout and signal. */
async function poll<T>(
  o: { timeoutMs: number; pollMs: number; signal?: AbortSignal },
  what: string,
  check: () => Promise<T | undefined>,
  lastState: () => string,
): Promise<T> {
  const deadline = Date.now() + o.timeoutMs;
  for (;;) {
    if (o.signal?.aborted) throw abortError(o.signal);
    const v = await check();
    if (v !== undefined) return v;
    if (Date.now() >= deadline) {
      throw codedError('ETIMEDOUT', `${what}: not done after ${o.timeoutMs} ms (last state: ${lastState()})`, { operation: what });
    }
    await sleep(Math.min(o.pollMs, Math.max(1, deadline - Date.now())), o.signal);
  }
}

function latestPrimarySnapshot(snaps: Awaited<ReturnType<Image['listSnapshots']>>) {
  return snaps.filter((s) => s.mirror && (s.mirror.state === 'primary' || s.mirror.state === 'primary-demoted')).at(-1);
}

/**
 * Resolves when the peer has copied the latest primary mirror snapshot (snapshot mode) or has
 * replayed the primary's journal up to its current end (journal mode).
 * `image` is the primary image.
 */
export async function waitForMirrorSync(image: Image, options: WaitOptions = {}): Promise<SyncState> {
  const o = checkWait(options, 'waitForMirrorSync options');
  if (o.peer !== undefined && (typeof o.peer?.[kTrack] !== 'function' || o.peer.readOnly)) {
    // librbd registers no header watch for read-only opens: such a handle never sees new snapshots.
    throw new TypeError('peer must be an Image opened without readOnly (read-only handles are not notified of new snapshots)');
  }
  const what = `wait for mirror sync of '${image?.spec}'`;
  const info = await getMirrorInfo(image);
  if (info.state !== 'enabled') throw codedError('EINVAL', `${what}: mirroring is not enabled on the image`, { operation: 'wait for mirror sync' });
  if (!info.primary) throw codedError('EINVAL', `${what}: the image is not primary (pass the primary image)`, { operation: 'wait for mirror sync' });
  let last = 'unknown';
  if (info.mode === 'snapshot') {
    const snap = latestPrimarySnapshot(await image.listSnapshots({ allNamespaces: true }));
    if (!snap) throw codedError('ENOENT', `${what}: the image has no primary mirror snapshot yet (create one first)`, { operation: 'wait for mirror sync' });
    const tsSec = Math.floor(snap.timestamp.getTime() / 1000);
    await poll(o, what, async () => {
      if (o.peer) {
        const copy = (await o.peer.listSnapshots({ allNamespaces: true })).find((s) => s.mirror?.primarySnapId === snap.id);
        last = copy
          ? `snapshot ${copy.id} ${copy.mirror!.complete ? 'complete' : `copying (object ${copy.mirror!.lastCopiedObjectNumber})`}`
          : snap.mirror!.peerUuids.length === 0
            ? `primary mirror snapshot ${snap.id} lists no peers (created before this site knew its peer): create a new mirror snapshot`
            : 'not yet created on the peer';
        return copy?.mirror?.complete ? true : undefined;
      }
      const st = await getMirrorStatus(image);
      const r = st.remotes.find((s) => s.replay);
      last = st.remotes.map((s) => `${s.siteName || s.mirrorUuid}: ${s.summary} ${s.description}`).join('; ') || 'no peer status';
      const rp = r?.replay;
      return rp && r.up && rp.localSnapshotTimestamp !== undefined && rp.localSnapshotTimestamp >= tsSec && rp.replayState === 'idle'
        ? true
        : undefined;
    }, () => last);
    return { mode: 'snapshot', snapshotId: snap.id };
  }
  // Journal mode: the peer reports its replay position against the primary's; wait for a report
  // made after we started that shows nothing left to replay.
  const since = Math.floor(Date.now() / 1000);
  await image.flush();
  const behind = await poll(o, what, async () => {
    const st = await getMirrorStatus(image);
    last = st.remotes.map((s) => `${s.siteName || s.mirrorUuid}: ${s.summary} ${s.rawDescription}`).join('; ') || 'no peer status';
    const r = st.remotes.find((s) => s.replay);
    const rp = r?.replay;
    if (!r || !rp || !r.up || r.state !== 'replaying' || !r.lastUpdate) return undefined;
    if (r.lastUpdate.getTime() / 1000 < since) return undefined;
    const p = rp.primaryPosition;
    const n = rp.nonPrimaryPosition;
    const samePos = p && n && p.entryTid === n.entryTid && p.tagTid === n.tagTid && p.objectNumber === n.objectNumber;
    return rp.entriesBehindPrimary === 0 && (samePos || (!p && !n)) ? 0 : undefined;
  }, () => last);
  return { mode: 'journal', entriesBehindPrimary: behind };
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

function stepError(step: FailoverStep, image: Image, e: unknown): Error {
  const cause = e as Error & { code?: string; errno?: number };
  const err = codedError(cause?.code ?? 'EIO', `failover step '${step}' on '${image.spec}' failed: ${cause?.message ?? String(e)}`, {
    step,
    errno: cause?.errno,
    cause: e,
  });
  return err;
}

/**
 * Orderly switch of the primary role: demote `primary`, wait until the demotion (and all data
 * before it) has reached `secondary`, promote `secondary`. Each step reports progress; a failure
 * is an Error with `.step` naming where it stopped.
 */
export async function failover(options: FailoverOptions): Promise<void> {
  const o = checkOptions<FailoverOptions>(options, 'failover options', ['primary', 'secondary', 'timeoutMs', 'signal', 'pollMs', 'onProgress']);
  const { primary, secondary } = o;
  if (!primary || !secondary) throw new TypeError('failover needs primary and secondary images');
  const w = checkWait({ timeoutMs: o.timeoutMs, signal: o.signal, pollMs: o.pollMs }, 'failover options');
  const progress = (step: FailoverStep, message: string) => o.onProgress?.({ step, message });
  const deadline = Date.now() + w.timeoutMs;

  progress('check', `checking ${primary.spec} and ${secondary.spec}`);
  const [pi, si] = await Promise.all([getMirrorInfo(primary), getMirrorInfo(secondary)]).catch((e) => {
    throw stepError('check', primary, e);
  });
  if (pi.state !== 'enabled' || si.state !== 'enabled') {
    throw codedError('EINVAL', `failover step 'check': mirroring is not enabled on ${pi.state !== 'enabled' ? primary.spec : secondary.spec}`, { step: 'check' });
  }
  if (pi.globalId !== si.globalId) {
    throw codedError('EINVAL', `failover step 'check': ${primary.spec} and ${secondary.spec} are not the same mirrored image (global ids differ)`, { step: 'check' });
  }
  if (si.primary) {
    throw codedError('EEXIST', `failover step 'check': ${secondary.spec} is already primary${pi.primary ? ' (split-brain: use failback with resync)' : ''}`, { step: 'check' });
  }

  if (pi.primary) {
    progress('demote', `demoting ${primary.spec}`);
    try {
      await demoteImage(primary);
    } catch (e) {
      throw stepError('demote', primary, e);
    }
  }

  progress('wait', `waiting for ${secondary.spec} to receive the demotion`);
  // A non-forced promote succeeds only once the demotion (and everything before it) has been
  // replayed on the secondary; until then librbd answers EBUSY. That is the exact condition.
  progress('promote', `promoting ${secondary.spec}`);
  try {
    await poll(
      { timeoutMs: Math.max(1, deadline - Date.now()), pollMs: w.pollMs, signal: w.signal },
      `promote '${secondary.spec}' after demotion of '${primary.spec}'`,
      async () => {
        try {
          await promoteImage(secondary);
          return true;
        } catch (e) {
          // EBUSY: demotion not replicated yet; EROFS: rbd-mirror still holds the image's
          // lock while it finishes replaying. Both clear by themselves.
          if (isRbdError(e, 'EBUSY') || isRbdError(e, 'EROFS')) return undefined;
          throw e;
        }
      },
      () => 'demotion not yet replicated (promote answers EBUSY)',
    );
  } catch (e) {
    throw stepError((e as { code?: string }).code === 'ETIMEDOUT' ? 'wait' : 'promote', secondary, e);
  }
  progress('done', `${secondary.spec} is primary, ${primary.spec} is non-primary`);
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

/**
 * The way back after a failover: resolve split-brain if needed (demote + resync the original
 * primary, wait for the full resync), then an orderly failover secondary → primary.
 * Resolves to the (re)opened original image, now primary.
 */
export async function failback(options: FailbackOptions): Promise<Image> {
  const o = checkOptions<FailbackOptions>(options, 'failback options', [
    'primary', 'secondary', 'timeoutMs', 'signal', 'pollMs', 'onProgress', 'resync',
  ]);
  if (!o.primary || !o.secondary) throw new TypeError('failback needs primary and secondary images');
  let primary: Image = o.primary;
  const secondary: Image = o.secondary;
  const w = checkWait({ timeoutMs: o.timeoutMs, signal: o.signal, pollMs: o.pollMs }, 'failback options');
  const progress = (step: FailoverStep, message: string) => o.onProgress?.({ step, message });
  const deadline = Date.now() + w.timeoutMs;
  const remaining = () => Math.max(1, deadline - Date.now());

  progress('check', `checking ${primary.spec} and ${secondary.spec}`);
  const [pi, si] = await Promise.all([getMirrorInfo(primary), getMirrorInfo(secondary)]).catch((e) => {
    throw stepError('check', primary, e);
  });
  if (!si.primary) {
    throw codedError('EINVAL', `failback step 'check': ${secondary.spec} is not primary (nothing to fail back from)`, { step: 'check' });
  }
  const splitBrain = pi.primary;
  if (splitBrain || o.resync) {
    if (pi.primary) {
      progress('demote', `demoting ${primary.spec} (split-brain: both sites primary)`);
      try {
        await demoteImage(primary);
      } catch (e) {
        throw stepError('demote', primary, e);
      }
    }
    progress('resync', `requesting resync of ${primary.spec} from ${secondary.spec}`);
    const pool = primary.pool;
    const name = primary.name;
    const oldId = (await primary.stat()).id;
    try {
      await resyncImage(primary);
    } catch (e) {
      throw stepError('resync', primary, e);
    }
    // rbd-mirror deletes and recreates the image: let go of it.
    await primary.close();
    progress('wait', `waiting for ${pool.spec}/${name} to be recreated and synced`);
    primary = await poll(
      { timeoutMs: remaining(), pollMs: w.pollMs, signal: w.signal },
      `resync of '${pool.spec}/${name}'`,
      async () => {
        let img: Image;
        try {
          img = await pool.openImage(name);
        } catch (e) {
          if (isRbdError(e, 'ENOENT')) return undefined;
          throw e;
        }
        try {
          const [st, info] = await Promise.all([img.stat(), getMirrorInfo(img)]);
          if (st.id !== oldId && info.state === 'enabled' && !info.primary) {
            const status = await getMirrorStatus(img);
            if (status.local?.up && status.local.state === 'replaying') return img;
          }
        } catch (e) {
          if (!isRbdError(e, 'ENOENT')) {
            await img.close();
            throw e;
          }
        }
        await img.close();
        return undefined;
      },
      () => 'image not yet recreated and replaying',
    ).catch((e) => {
      throw stepError('wait', secondary, e);
    });
    if (si.mode === 'snapshot') {
      // The resync copies the latest mirror snapshot; make sure it is complete here.
      try {
        await waitForMirrorSync(secondary, { timeoutMs: remaining(), signal: w.signal, pollMs: w.pollMs, peer: primary });
      } catch (e) {
        throw stepError('wait', primary, e);
      }
    }
  }
  await failover({
    primary: secondary,
    secondary: primary,
    timeoutMs: remaining(),
    signal: w.signal,
    pollMs: w.pollMs,
    onProgress: o.onProgress,
  });
  return primary;
}
