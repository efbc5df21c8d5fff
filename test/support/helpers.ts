// Shared helpers for the binding tests: connections to the suite's clusters,
// unique image names and cleanup of what a test file created.
import { createHash, randomBytes } from 'node:crypto';
import { afterAll, beforeAll, expect } from 'vitest';
import { Rados, type Pool } from '../../lib/index.js';
import { getClusters, rbdCli, rbdPurgeImage, type TestCluster } from './clusters.js';

export const clusters = getClusters();
export const A: TestCluster = clusters.a;
export const B: TestCluster | undefined = clusters.b;

export function connectTo(c: TestCluster, extra: { timeoutMs?: number } = {}): Promise<Rados> {
  return Rados.connect({ conf: c.conf, keyring: c.keyring, user: c.user, ...extra });
}

let seq = 0;
/** Unique per process and call, valid as an image/snapshot name. */
export function uniq(prefix: string): string {
  return `${prefix}-${process.pid}-${Date.now().toString(36)}-${seq++}`;
}

export const md5 = (b: Buffer) => createHash('md5').update(b).digest('hex');
export const rnd = (n: number) => randomBytes(n);
export const KiB = 1024;
export const MiB = 1024 * 1024;

/**
 * Removes images (and their snapshots, unprotecting them) with the rbd CLI; ignores missing ones.
 * Four at a time: a file's cleanup can run hundreds of CLI processes, and one by one that outlasted
 * the hook timeout with eight release suites sharing the CI machine's 2 cores. A parent cannot go
 * while its clones exist, so what failed is tried again one by one, newest first (clones first).
 */
export async function purgeImages(c: TestCluster, names: Iterable<string>): Promise<void> {
  const newestFirst = [...names].reverse();
  const failed = new Set<string>();
  let next = 0;
  const worker = async () => {
    while (next < newestFirst.length) {
      const name = newestFirst[next++];
      await rbdPurgeImage(c, name).catch(() => failed.add(name));
    }
  };
  await Promise.all(Array.from({ length: 4 }, worker));
  for (const name of newestFirst) if (failed.has(name)) await rbdPurgeImage(c, name);
}

/** Creates images on a pool and remembers them for purge in afterAll. */
export class Images {
  readonly names: string[] = [];
  constructor(readonly c: TestCluster) {}
  name(prefix: string): string {
    const n = uniq(prefix);
    this.names.push(n);
    return n;
  }
  async create(pool: Pool, prefix: string, size: number, opts?: Parameters<Pool['createImage']>[2]): Promise<string> {
    const n = this.name(prefix);
    await pool.createImage(n, size, opts);
    return n;
  }
  purge(): Promise<void> {
    return purgeImages(this.c, this.names);
  }
}

/** `rbd diff --format json` as Extent-like objects. */
export async function cliDiff(
  c: TestCluster,
  spec: string,
  opts: { fromSnap?: string; wholeObject?: boolean } = {},
): Promise<{ offset: number; length: number; exists: boolean }[]> {
  const args = ['diff', '--format', 'json'];
  if (opts.fromSnap) args.push('--from-snap', opts.fromSnap);
  if (opts.wholeObject) args.push('--whole-object');
  args.push(spec.includes('/') ? spec : `${c.pool}/${spec}`);
  const out = JSON.parse(await rbdCli(c, args)) as { offset: number; length: number; exists: string | boolean }[];
  return out.map((e) => ({ offset: e.offset, length: e.length, exists: e.exists === true || e.exists === 'true' }));
}

/** A connection and an open pool for a test file (or describe block), closed after it, with its images purged. */
export interface PoolFixture {
  readonly rados: Rados;
  readonly pool: Pool;
  readonly images: Images;
}

/** Registers beforeAll/afterAll hooks that connect to `c`, open its pool, and clean up after. */
export function usePool(c: TestCluster = A): PoolFixture {
  const images = new Images(c);
  let rados: Rados | undefined;
  let pool: Pool | undefined;
  beforeAll(async () => {
    rados = await connectTo(c);
    pool = await rados.openPool(c.pool);
  });
  afterAll(async () => {
    await rados?.close();
    await images.purge();
  });
  return {
    get rados() { return rados!; },
    get pool() { return pool!; },
    images,
  };
}

/** Awaits `p`, expecting a rejection whose `code` is `code`; returns the error. */
export async function expectCode(p: Promise<unknown>, code: string): Promise<Error & Record<string, unknown>> {
  try {
    await p;
  } catch (e) {
    expect((e as { code?: string }).code, String(e)).toBe(code);
    return e as Error & Record<string, unknown>;
  }
  throw new Error(`expected rejection with ${code}`);
}
