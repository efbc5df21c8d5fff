// Shared command-line arguments: cluster connection flags, global flags, image/pool specs,
// integer arguments, and path arguments where - means stdin/stdout.
import { createReadStream, createWriteStream } from 'node:fs';
import type { Readable, Writable } from 'node:stream';
import { InvalidArgumentError, type Command } from 'commander';
import type { ConnectOptions, Rados } from '../core/rados.js';
import type { Pool } from '../core/pool.js';
import { parseRetention } from '../transfer/retention.js';

export class UsageError extends Error {
  code = 'ERR_USAGE';
}

export interface ImageSpec {
  pool: string;
  namespace: string;
  image: string;
  snap?: string;
}

/** pool[/namespace]/image[@snap]; a bare image name means pool 'rbd' (as the rbd CLI). */
export function parseImageSpec(spec: string, snap: 'required' | 'optional' | 'forbidden'): ImageSpec {
  const at = spec.indexOf('@');
  const path = at < 0 ? spec : spec.slice(0, at);
  const s = at < 0 ? undefined : spec.slice(at + 1);
  const parts = path.split('/');
  if (parts.length > 3 || parts.some((p) => p === '') || (s !== undefined && s === '')) {
    throw new UsageError(`invalid image spec '${spec}' (expected pool[/namespace]/image${snap === 'forbidden' ? '' : '[@snap]'})`);
  }
  if (snap === 'required' && s === undefined) throw new UsageError(`image spec '${spec}' needs a snapshot (…@snap)`);
  if (snap === 'forbidden' && s !== undefined) throw new UsageError(`image spec '${spec}' must not name a snapshot`);
  const [pool, namespace, image] = parts.length === 1 ? ['rbd', '', parts[0]] : parts.length === 2 ? [parts[0], '', parts[1]] : parts;
  return { pool, namespace, image, snap: s };
}

/** pool[/namespace] */
export function parsePoolSpec(spec: string): { pool: string; namespace: string } {
  const parts = spec.split('/');
  if (parts.length > 2 || parts.some((p) => p === '') || spec.includes('@')) throw new UsageError(`invalid pool spec '${spec}' (expected pool[/namespace])`);
  return { pool: parts[0], namespace: parts[1] ?? '' };
}

export function intArg(name: string, min = 0) {
  return (v: string) => {
    const n = Number(v);
    if (!Number.isSafeInteger(n) || n < min) throw new InvalidArgumentError(`${name} must be an integer ≥ ${min}`);
    return n;
  };
}

/** A number N (the N newest) or a retention policy string, checked here so usage errors exit early. */
export function keepArg(name: string) {
  return (v: string): number | string => {
    try {
      parseRetention(v, name);
    } catch (e) {
      throw new InvalidArgumentError((e as Error).message);
    }
    return /^\d+$/.test(v.trim()) ? Number(v) : v;
  };
}

/** A byte rate such as 50M, 1.5G, 800K or 1000000 (K/M/G/T: powers of 1024; per second). */
export function parseRate(v: string): number {
  const n = bytesOf(v, true);
  if (n === undefined) throw new InvalidArgumentError('expected a rate in bytes per second, such as 50M, 1.5G or 800K');
  return n;
}

/** A size: 48M, 1G, 65536 (K/M/G/T = 1024^n). */
export function parseSize(v: string): number {
  const n = bytesOf(v, false);
  if (n === undefined) throw new InvalidArgumentError('expected a size in bytes, such as 48M, 1G or 65536');
  return n;
}

function bytesOf(v: string, rate: boolean): number | undefined {
  const m = (rate ? /^(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?(?:\/s)?$/i : /^(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?$/i).exec(v.trim());
  const n = m ? Number(m[1]) * 1024 ** ' kmgt'.indexOf(m[2].toLowerCase() || ' ') : NaN;
  return Number.isFinite(n) && n >= 1 ? Math.floor(n) : undefined;
}

export interface ClusterFlags {
  conf?: string;
  id?: string;
  keyring?: string;
  cluster?: string;
}

export function sourceFlags(o: Record<string, unknown>): ClusterFlags {
  return { conf: o.conf as string, id: o.id as string, keyring: o.keyring as string, cluster: o.cluster as string };
}

export function destFlags(o: Record<string, unknown>): ClusterFlags | undefined {
  const d = { conf: o.destConf as string, id: o.destId as string, keyring: o.destKeyring as string, cluster: o.destCluster as string };
  return Object.values(d).some((v) => v !== undefined) ? d : undefined;
}

export function connectOptions(f: ClusterFlags): ConnectOptions {
  const c: ConnectOptions = {};
  if (f.conf) c.conf = f.conf;
  if (f.id) c.user = f.id;
  if (f.keyring) c.keyring = f.keyring;
  if (f.cluster) c.clusterName = f.cluster;
  return c;
}

export interface GlobalOpts {
  json?: boolean;
  progress?: boolean;
  progressJson?: boolean;
}

export function inputStream(path: string): Readable {
  return path === '-' ? process.stdin : createReadStream(path);
}

export function outputStream(path: string): Writable {
  return path === '-' ? process.stdout : createWriteStream(path, { flags: 'wx' });
}

export async function openPool(r: Rados, pool: string, namespace: string): Promise<Pool> {
  return r.openPool(pool, namespace ? { namespace } : {});
}

export function clusterOptions(cmd: Command, dest: boolean): Command {
  cmd
    .option('-c, --conf <path>', 'ceph.conf of the (source) cluster')
    .option('--id <id>', 'client id, without "client." (default admin)')
    .option('--keyring <path>', 'keyring path')
    .option('--cluster <name>', 'cluster name (default ceph)');
  if (dest) {
    cmd
      .option('--dest-conf <path>', 'ceph.conf of the destination cluster (default: the source cluster)')
      .option('--dest-id <id>', 'client id on the destination cluster')
      .option('--dest-keyring <path>', 'keyring for the destination cluster')
      .option('--dest-cluster <name>', 'destination cluster name');
  }
  return cmd;
}

/** The flags sync and sync-pool share (snapshot prefix, retention, verify, force, copy tuning). */
export function syncOptions(c: Command, help: { force: string; concurrency: string }): Command {
  return c
    .option('--prefix <prefix>', 'snapshot prefix owned by sync', 'rbd-sync-')
    .option('--keep-source <policy>', 'prefixed snapshots kept on the source: N newest, or a policy such as latest3,days7,weeks4', keepArg('keep-source'), 3)
    .option('--keep-target <policy>', 'prefixed snapshots kept on the target (as --keep-source)', keepArg('keep-target'), 3)
    .option('--verify', 'checksum the copied extents on both sides afterwards')
    .option('--force', help.force)
    .option('--concurrency <n>', help.concurrency, intArg('concurrency', 1))
    .option('--inflight <size>', 'data buffers in flight (default 80M; with several images copied at once, shared by them)', parseSize)
    .option('--write-gap <bytes>', 'write nearby changes as one op, rewriting up to this many unchanged bytes (default 0)', intArg('write-gap'))
    .option('--bwlimit <rate>', 'cap the data sent to the destination, bytes per second (50M, 1.5G; K/M/G = 1024^n)', parseRate);
}

/** syncImage/syncPool options from the flags syncOptions() declared. */
export function syncFlags(o: Record<string, unknown>) {
  return {
    prefix: o.prefix as string,
    keep: { source: o.keepSource as number | string, target: o.keepTarget as number | string },
    verify: Boolean(o.verify),
    force: Boolean(o.force),
    concurrency: o.concurrency as number | undefined,
    inflightBytes: o.inflight as number | undefined,
    writeGap: o.writeGap as number | undefined,
    bandwidth: o.bwlimit as number | undefined,
  };
}
