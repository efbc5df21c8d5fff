// Site status descriptions: parsing rbd-mirror's JSON and shaping status entries.
import type { NativeGlobalStatus, NativeSiteStatus } from '../binding/index.js';
import {
  imageStateName, statusStateName,
  type JournalPosition, type MirrorHealth, type MirrorImageStatus, type MirrorReplayStatus, type MirrorSiteStatus,
} from './types.js';

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

export function toSiteStatus(s: NativeSiteStatus, localSite: string, peers: Map<string, string>): MirrorSiteStatus {
  const local = s.mirrorUuid === '';
  const { text, replay } = parseMirrorDescription(s.description);
  const state = statusStateName(s.state);
  const out: MirrorSiteStatus = {
    siteName: local ? localSite : (peers.get(s.mirrorUuid) ?? ''),
    mirrorUuid: s.mirrorUuid,
    local,
    state,
    up: s.up,
    summary: `${s.up ? 'up' : 'down'}+${state}`,
    description: text,
    rawDescription: s.description,
  };
  if (s.lastUpdate > 0) out.lastUpdate = new Date(s.lastUpdate * 1000);
  if (replay) out.replay = replay;
  return out;
}

export function toImageStatus(g: NativeGlobalStatus, localSite: string, peers: Map<string, string>): MirrorImageStatus {
  const sites = g.sites.map((s) => toSiteStatus(s, localSite, peers));
  const st: MirrorImageStatus = {
    name: g.name,
    globalId: g.globalId,
    state: imageStateName(g.state),
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
export function worst(a: MirrorHealth, b: MirrorHealth): MirrorHealth {
  return HEALTH_ORDER.indexOf(a) >= HEALTH_ORDER.indexOf(b) ? a : b;
}
