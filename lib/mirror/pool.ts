// Pool mirroring: mode, uuid, bootstrap, peers, pool-wide status.
import { native, type IoCtxHandle } from '../binding/index.js';
import { codedError } from '../core/errors.js';
import { librbdVersion } from '../core/librbd.js';
import { checkName, checkOptions, checkUint, describe } from '../core/validate.js';
import type { Pool } from '../core/pool.js';
import { kHandle, kTrack } from '../core/internal.js';
import {
  IMAGE_MODES, PEER_DIRECTIONS, SETTABLE_MODES, checkEnum, imageModeName, imageModeRaw, imageStateName, mirrorModeName,
  mirrorModeRaw, peerDirectionName, peerDirectionRaw, statusStateName,
  type AddPeerOptions, type MirrorDaemonInfo, type MirrorHealth, type MirrorImageStatus, type MirrorMode,
  type MirrorPeer, type MirrorPoolStatus, type MirrorStatusState, type MirroredImage, type SettableImageMode,
  type SettableMirrorMode, type SettablePeerDirection,
} from './types.js';
import { toImageStatus, worst } from './status.js';
import { getSiteName } from './site.js';

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

/** The user librbd's bootstrap create and import make for the peer site's rbd-mirror, with its caps. */
const PEER_USER = 'client.rbd-mirror-peer';
const PEER_CAPS = ['mon', 'profile rbd-mirror-peer', 'osd', 'profile rbd'];

/** Key type of the peer user a bootstrap makes: the mon's default, or AES (cephx type 1). */
export type PeerKeyType = 'default' | 'aes';
export interface PeerKeyOptions {
  /**
   * 'aes': the peer user `client.rbd-mirror-peer` is created with an AES key (cephx type 1), which
   * every release's rbd-mirror can use; needed on Tentacle (and later) clusters whose peer runs
   * Pacific or Reef, as Tentacle otherwise makes it AES-256. The mon must accept AES keys. If the
   * user already exists with another key type, rejects with EEXIST. Default 'default': the mon's choice.
   */
  peerKeyType?: PeerKeyType;
}
const checkPeerKeyType = (v: unknown): PeerKeyType => (v === undefined ? 'default' : checkEnum(v, 'peerKeyType', ['default', 'aes'] as const));

/** Mirroring operations on one pool (and namespace): `pool.mirror`. */
export class PoolMirror {
  /** @internal */
  constructor(readonly pool: Pool) {}

  private run<T>(fn: (h: IoCtxHandle) => Promise<T>): Promise<T> {
    return this.pool[kTrack](() => fn(this.pool[kHandle]));
  }

  async getMode(): Promise<MirrorMode> {
    return mirrorModeName(await this.run((h) => native.getMirrorMode(h)));
  }

  /** 'image' mirrors images enabled one by one; 'pool' mirrors every journaling image. */
  async setMode(mode: SettableMirrorMode): Promise<void> {
    const n = mirrorModeRaw(checkEnum(mode, 'mirror mode', SETTABLE_MODES));
    await this.run((h) => native.setMirrorMode(h, n));
  }

  /** This pool's mirror uuid (how peers identify this site in status entries). */
  getUuid(): Promise<string> {
    return this.run((h) => native.getMirrorUuid(h));
  }

  /**
   * A token a peer cluster imports to mirror with this one. It contains a key: keep it secret.
   * `peerKeyType: 'aes'` (see {@link PeerKeyOptions}) when the peer's rbd-mirror is older than Tentacle.
   */
  async createBootstrapToken(options: PeerKeyOptions = {}): Promise<string> {
    const o = checkOptions<PeerKeyOptions>(options, 'createBootstrapToken options', ['peerKeyType']);
    const keyType = checkPeerKeyType(o.peerKeyType);
    await this.ensurePeerKey(keyType, 'create mirror bootstrap token');
    return this.run((h) => native.createMirrorBootstrap(h));
  }

  /**
   * Makes sure this cluster's peer user (`client.rbd-mirror-peer`, which librbd's bootstrap
   * create and an rx-tx import get or create) has an AES key: Tentacle's mon would otherwise make
   * it AES-256, which Pacific's and Reef's cephx cannot use. The mon must accept AES keys
   * (`mon_auth_allow_insecure_key`); earlier mons ignore `key_type` and make AES keys anyway.
   */
  private async ensurePeerKey(keyType: PeerKeyType, op: string): Promise<void> {
    if (keyType !== 'aes') return;
    const got = await this.pool.rados.commandJson<{ entity?: string; key?: string }[] | { key?: string }>('mon', {
      prefix: 'auth get-or-create', entity: PEER_USER, caps: PEER_CAPS, key_type: 'aes',
    });
    const key = (Array.isArray(got) ? got[0] : got)?.key ?? '';
    const kb = Buffer.from(key, 'base64');
    const type = kb.length >= 2 ? kb.readUInt16LE(0) : 0;
    if (type !== 1) {
      // The user existed with another key; get-or-create returned it unchanged (key not shown).
      throw codedError('EEXIST', `${op} '${this.pool.spec}' failed: ${PEER_USER} already exists with a cephx type ${type}` +
        `${type === 2 ? ' (AES-256)' : ''} key, not AES; remove the user (ceph auth rm ${PEER_USER}) or give it an AES key first`, {
        errno: -17,
        operation: op,
        pool: this.pool.name,
      });
    }
  }

  /** Imports a peer's bootstrap token (default direction 'rx-tx'). */
  async importBootstrapToken(token: string, options: { direction?: 'rx-only' | 'rx-tx' } & PeerKeyOptions = {}): Promise<void> {
    if (typeof token !== 'string') throw new TypeError(`token must be a string, got ${describe(token)}`);
    if (token.length === 0) throw new RangeError('token must not be empty');
    if (token.includes('\0')) throw new TypeError('token must not contain NUL');
    const o = checkOptions<{ direction?: string } & PeerKeyOptions>(options, 'importBootstrapToken options', ['direction', 'peerKeyType']);
    const direction = o.direction === undefined ? 'rx-tx' : checkEnum(o.direction, 'direction', ['rx-only', 'rx-tx'] as const);
    const keyType = checkPeerKeyType(o.peerKeyType);
    const op = 'import mirror bootstrap token';
    // Decode it here, so a garbled token gets a precise error (the token itself is never shown).
    let peer: { fsid: string; monHost: string; keyType: number } | undefined;
    try {
      const t = JSON.parse(Buffer.from(token.trim(), 'base64').toString('utf8')) as Record<string, unknown>;
      if (['fsid', 'client_id', 'key', 'mon_host'].every((k) => typeof t[k] === 'string' && t[k] !== '')) {
        // cephx key: le16 type first (1 AES, 2 AES-256 as Tentacle makes them).
        const kb = Buffer.from(t.key as string, 'base64');
        peer = { fsid: t.fsid as string, monHost: t.mon_host as string, keyType: kb.length >= 2 ? kb.readUInt16LE(0) : 0 };
      }
    } catch { /* not base64 JSON */ }
    if (!peer) {
      throw codedError('EINVAL', `${op} '${this.pool.spec}' failed: the token is not a valid bootstrap token (token not shown)`, {
        errno: -22,
        operation: op,
        pool: this.pool.name,
      });
    }
    // rx-tx: librbd gets or creates this cluster's peer user for the other side's rbd-mirror.
    if (direction === 'rx-tx') await this.ensurePeerKey(keyType, op);
    try {
      await this.run((h) => native.importMirrorBootstrap(h, peerDirectionRaw(direction), token.trim()));
    } catch (e) {
      // The native message never holds the token; name the peer it could not be used with.
      (e as Error).message += ` (peer site ${peer.fsid}, mon host ${peer.monHost.slice(0, 200)})`;
      // Tentacle makes the peer user's key AES-256 (cephx key type 2); Pacific's and Reef's librbd
      // cannot use such a key and answer a bare EINVAL: say so.
      if ((e as { code?: string }).code === 'EINVAL' && peer.keyType !== 1) {
        (e as Error).message += `: the token's key is of cephx type ${peer.keyType}` +
          `${peer.keyType === 2 ? ' (AES-256, as Ceph Tentacle and later create keys)' : ''}, which this librbd (${librbdVersion}) cannot use` +
          ' (create the token with peerKeyType \'aes\', or use a librbd of the peer\'s release)';
      }
      throw e;
    }
  }

  async listPeers(): Promise<MirrorPeer[]> {
    const list = await this.run((h) => native.listMirrorPeers(h));
    return list.map((p) => {
      const peer: MirrorPeer = {
        uuid: p.uuid,
        direction: peerDirectionName(p.direction),
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
    return this.run((h) => native.addMirrorPeer(h, peerDirectionRaw(direction), site, client, monHost, key));
  }

  /** Removes a peer (ENOENT for an unknown uuid). */
  async removePeer(uuid: string): Promise<void> {
    checkUuid(uuid);
    await this.run((h) => native.removeMirrorPeer(h, uuid));
  }

  async setPeerDirection(uuid: string, direction: SettablePeerDirection): Promise<void> {
    checkUuid(uuid);
    const d = peerDirectionRaw(checkEnum(direction, 'direction', PEER_DIRECTIONS));
    await this.run((h) => native.setMirrorPeerDirection(h, uuid, d));
  }

  /** Sets the peer's site (cluster) name. */
  async setPeerSiteName(uuid: string, siteName: string): Promise<void> {
    checkUuid(uuid);
    checkName(siteName, 'site name', { forbid: '@' });
    await this.run((h) => native.setMirrorPeerSiteName(h, uuid, siteName));
  }

  /** Sets the client the local rbd-mirror uses on the peer ('client.<id>' or '<id>'). */
  async setPeerClient(uuid: string, client: string): Promise<void> {
    checkUuid(uuid);
    const c = checkName(client, 'client name', { forbid: '@' });
    await this.run((h) => native.setMirrorPeerClient(h, uuid, c.startsWith('client.') ? c : `client.${c}`));
  }

  async setPeerMonHost(uuid: string, monHost: string): Promise<void> {
    checkUuid(uuid);
    checkName(monHost, 'monHost');
    await this.run((h) => native.setMirrorPeerAttribute(h, uuid, 'mon_host', monHost));
  }

  async setPeerKey(uuid: string, key: string): Promise<void> {
    checkUuid(uuid);
    const k = checkKey(key);
    await this.run((h) => native.setMirrorPeerAttribute(h, uuid, 'key', k));
  }

  /**
   * Pool summary as `rbd mirror pool status`: image counts by state, the image health derived
   * from them, and the health of this cluster's rbd-mirror daemons (from the mgr service map).
   */
  async getStatusSummary(): Promise<MirrorPoolStatus> {
    const states: Partial<Record<MirrorStatusState, number>> = {};
    for (const [raw, count] of await this.run((h) => native.getMirrorStatusSummary(h))) {
      const state = statusStateName(raw);
      states[state] = (states[state] ?? 0) + count;
    }
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
      const page = await this.run((h) => native.listMirrorGlobalStatus(h, start, pageSize));
      for (const g of page) out.push(toImageStatus(g, localSite, peers));
      if (page.length < pageSize) break;
      start = page[page.length - 1].id!;
    }
    return out;
  }

  /** Images with mirroring enabled (all pages), optionally only those of one mode. */
  async listMirroredImages(options: { mode?: SettableImageMode; pageSize?: number } = {}): Promise<MirroredImage[]> {
    const o = checkOptions<{ mode?: SettableImageMode; pageSize?: number }>(options, 'listMirroredImages options', ['mode', 'pageSize']);
    const mode = o.mode === undefined ? null : imageModeRaw(checkEnum(o.mode, 'mode', IMAGE_MODES));
    const pageSize = o.pageSize === undefined ? 256 : checkUint(o.pageSize, 'pageSize', { min: 1, max: 1024 });
    const names = new Map((await this.pool.listImageSpecs()).map((s) => [s.id, s.name]));
    const out: MirroredImage[] = [];
    let start = '';
    for (;;) {
      const page = await this.run((h) => native.listMirrorImageInfo(h, mode, start, pageSize));
      for (const e of page) {
        out.push({
          id: e.id,
          mode: imageModeName(e.mode),
          globalId: e.globalId,
          state: imageStateName(e.state),
          primary: e.primary,
          name: names.get(e.id) ?? '',
        });
      }
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
