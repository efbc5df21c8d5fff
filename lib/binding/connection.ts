// native/connection.cc
import type { ClusterHandle } from './handles.js';

export interface ConnectionBinding {
  connect(o: { conf?: string; clusterName?: string; user: string; config: [string, string][] }): Promise<ClusterHandle>;
  getFsid(c: ClusterHandle): string;
  /** This client's global id (client.<id>). */
  getInstanceId(c: ClusterHandle): number;
  listPools(c: ClusterHandle): Promise<string[]>;
  /** mon or mgr command (JSON); resolves with its output, status line and return code. */
  sendCommand(c: ClusterHandle, target: 'mon' | 'mgr', cmd: string, input?: Buffer): Promise<{ out: Buffer; status: string; rc: number }>;
  closeConnection(c: ClusterHandle): Promise<void>;
}

export const connectionFunctions: Record<keyof ConnectionBinding, true> = {
  connect: true, getFsid: true, getInstanceId: true, listPools: true, sendCommand: true, closeConnection: true,
};
