/**
 * The librbd notifications an image's header gets, seen by an independent watcher: `rados watch`
 * on rbd_header.<id> prints each notify's payload as a hexdump. librbd's NotifyMessage starts with
 * ENCODE_START (struct_v, compat, u32 length) and then the u32 NotifyOp, so byte 6 is the op.
 */
import { spawn } from 'node:child_process';
import { clusterArgs, type TestCluster } from './clusters.js';

/** librbd's NotifyOp values (librbd/WatchNotifyTypes.h) that tests look for. */
export const NOTIFY_OP = { acquiredLock: 0, releasedLock: 1, quiesce: 18, unquiesce: 19 } as const;

export interface HeaderWatch {
  /** The NotifyOp of every notification received so far, in order. */
  ops(): number[];
  /**
   * Waits until `count` notifications of `op` have arrived (stdout is in order: those before it
   * have arrived too). Rejects after `timeoutMs`.
   */
  waitFor(op: number, count?: number, timeoutMs?: number): Promise<number[]>;
  /** Ends the watch (the watcher unregisters and exits). */
  stop(): Promise<void>;
}

/** Starts watching `pool`'s image with header id `imageId`; resolves once the watch is registered. */
export function watchHeader(c: TestCluster, pool: string, imageId: string): Promise<HeaderWatch> {
  const env = { ...process.env };
  delete env.CEPH_ARGS;
  delete env.LD_PRELOAD;
  // rados exits when a line arrives on stdin: keep it open until stop().
  const child = spawn('rados', [...clusterArgs(c), '-p', pool, 'watch', `rbd_header.${imageId}`], { stdio: ['pipe', 'pipe', 'pipe'], env });
  let out = '';
  let err = '';
  const exited = new Promise<void>((resolve) => child.on('close', () => resolve()));
  const ops = () => {
    const found: number[] = [];
    // Each notify: a "NOTIFY cookie ..." line, then hexdump lines ("00000000  07 01 14 00 00 00 03 00 ...").
    for (const block of out.split(/^NOTIFY /m).slice(1)) {
      const first = /^00000000\s+((?:[0-9a-f]{2}\s+){8})/m.exec(block);
      if (!first) continue;
      const bytes = first[1].trim().split(/\s+/).map((h) => parseInt(h, 16));
      found.push(bytes[6] | (bytes[7] << 8));
    }
    return found;
  };
  const stop = async () => {
    child.stdin.end('\n');
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(timer);
  };
  const waitFor = async (op: number, count = 1, timeoutMs = 30_000) => {
    const end = Date.now() + timeoutMs;
    for (;;) {
      const seen = ops();
      if (seen.filter((x) => x === op).length >= count) return seen;
      if (Date.now() > end) throw new Error(`rados watch: ${count} notification(s) of op ${op} not seen in ${timeoutMs} ms (saw ${seen.join(',')})`);
      await new Promise((r) => setTimeout(r, 50));
    }
  };
  return new Promise((resolve, reject) => {
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString('utf8');
      if (out.includes('press enter to exit')) resolve({ ops, waitFor, stop });
    });
    child.stderr.on('data', (d: Buffer) => (err += d.toString('utf8')));
    child.on('error', reject);
    void exited.then(() => reject(new Error(`rados watch exited before registering: ${err.trim()}`)));
  });
}
