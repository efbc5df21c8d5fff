// native/mirror/pool.cc: site name, pool mode, bootstrap, peers, pool-wide status
import type { ClusterHandle, IoCtxHandle } from './handles.js';

/** Raw enum values as librbd reports them (lib/mirror maps them to names). */
export interface NativeSiteStatus {
  mirrorUuid: string;
  state: number;
  description: string;
  lastUpdate: number;
  up: boolean;
}
export interface NativeGlobalStatus {
  id?: string;
  name: string;
  globalId: string;
  state: number;
  primary: boolean;
  sites: NativeSiteStatus[];
}
export interface NativePeer {
  uuid: string;
  direction: number;
  siteName: string;
  mirrorUuid: string;
  clientName: string;
  lastSeen: number;
  monHost: string;
  hasKey: boolean;
}
export interface NativeMirrorImageInfo {
  id: string;
  mode: number;
  globalId: string;
  state: number;
  primary: boolean;
}

export interface MirrorPoolBinding {
  getMirrorSiteName(c: ClusterHandle): Promise<string>;
  setMirrorSiteName(c: ClusterHandle, name: string): Promise<void>;
  getMirrorMode(p: IoCtxHandle): Promise<number>;
  setMirrorMode(p: IoCtxHandle, mode: number): Promise<void>;
  getMirrorUuid(p: IoCtxHandle): Promise<string>;
  createMirrorBootstrap(p: IoCtxHandle): Promise<string>;
  importMirrorBootstrap(p: IoCtxHandle, direction: number, token: string): Promise<void>;
  addMirrorPeer(p: IoCtxHandle, direction: number, site: string, client: string, monHost?: string, key?: string): Promise<string>;
  removeMirrorPeer(p: IoCtxHandle, uuid: string): Promise<void>;
  setMirrorPeerSiteName(p: IoCtxHandle, uuid: string, siteName: string): Promise<void>;
  setMirrorPeerClient(p: IoCtxHandle, uuid: string, client: string): Promise<void>;
  setMirrorPeerDirection(p: IoCtxHandle, uuid: string, direction: number): Promise<void>;
  /** Sets one peer attribute (mon_host or key), keeping the other. */
  setMirrorPeerAttribute(p: IoCtxHandle, uuid: string, name: 'mon_host' | 'key', value: string): Promise<void>;
  listMirrorPeers(p: IoCtxHandle): Promise<NativePeer[]>;
  /** Image counts by raw status state. */
  getMirrorStatusSummary(p: IoCtxHandle): Promise<[state: number, count: number][]>;
  listMirrorGlobalStatus(p: IoCtxHandle, start: string, max: number): Promise<NativeGlobalStatus[]>;
  listMirrorImageInfo(p: IoCtxHandle, mode: number | null, start: string, max: number): Promise<NativeMirrorImageInfo[]>;
}

export const mirrorPoolFunctions: Record<keyof MirrorPoolBinding, true> = {
  getMirrorSiteName: true, setMirrorSiteName: true, getMirrorMode: true, setMirrorMode: true, getMirrorUuid: true,
  createMirrorBootstrap: true, importMirrorBootstrap: true, addMirrorPeer: true, removeMirrorPeer: true,
  setMirrorPeerSiteName: true, setMirrorPeerClient: true, setMirrorPeerDirection: true, setMirrorPeerAttribute: true,
  listMirrorPeers: true, getMirrorStatusSummary: true, listMirrorGlobalStatus: true, listMirrorImageInfo: true,
};
