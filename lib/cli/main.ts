#!/usr/bin/env node
// rbd-stream: command-line interface.
//
// Exit codes:
//   0    success
//   1    failure (I/O, cluster, unexpected errors)
//   2    usage error (bad arguments, bad image spec)
//   3    sync-pool: at least one image failed (the others were synced)
//   4    refused by a safety check: ENOENT (missing image/snapshot), EEXIST (to-snapshot exists),
//        ERR_WRONG_BASE, ERR_TARGET_CHANGED, ERR_NO_COMMON_SNAPSHOT, EBUSY
//   5    invalid diff stream (ERR_DIFF_*: bad banner, truncated, unknown tag, out of range, corrupt)
//   130  interrupted (SIGINT/SIGTERM)
//
// --json prints one JSON document on stdout (on stderr when stdout carries a diff stream);
// failures print { "error": { "code", "message" } } there. Progress bars go to stderr, only on a TTY.
import { createReadStream, createWriteStream } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { Transform, type Readable, type Writable } from 'node:stream';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import cliProgress from 'cli-progress';
import { Rados, type ConnectOptions } from '../core/rados.js';
import type { Pool } from '../core/pool.js';
import { exportDiff, importDiff } from '../transfer/diff-stream.js';
import { inspectDiff } from '../transfer/diff-format.js';
import { syncImage, syncPool, type SyncPoolImageResult } from '../transfer/sync.js';
import { MirrorPool } from '../mirror/mirror.js';

export const EXIT = { OK: 0, FAILED: 1, USAGE: 2, PARTIAL: 3, REFUSED: 4, BAD_STREAM: 5, INTERRUPTED: 130 } as const;
const REFUSALS = new Set(['ENOENT', 'EEXIST', 'ERR_WRONG_BASE', 'ERR_TARGET_CHANGED', 'ERR_NO_COMMON_SNAPSHOT', 'EBUSY']);

class UsageError extends Error {
  code = 'ERR_USAGE';
}

// --- helpers --------------------------------------------------------------------------------

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
function parsePoolSpec(spec: string): { pool: string; namespace: string } {
  const parts = spec.split('/');
  if (parts.length > 2 || parts.some((p) => p === '') || spec.includes('@')) throw new UsageError(`invalid pool spec '${spec}' (expected pool[/namespace])`);
  return { pool: parts[0], namespace: parts[1] ?? '' };
}

function intArg(name: string, min = 0) {
  return (v: string) => {
    const n = Number(v);
    if (!Number.isSafeInteger(n) || n < min) throw new InvalidArgumentError(`${name} must be an integer ≥ ${min}`);
    return n;
  };
}

interface ClusterFlags {
  conf?: string;
  id?: string;
  keyring?: string;
  cluster?: string;
}

function sourceFlags(o: Record<string, unknown>): ClusterFlags {
  return { conf: o.conf as string, id: o.id as string, keyring: o.keyring as string, cluster: o.cluster as string };
}

function destFlags(o: Record<string, unknown>): ClusterFlags | undefined {
  const d = { conf: o.destConf as string, id: o.destId as string, keyring: o.destKeyring as string, cluster: o.destCluster as string };
  return Object.values(d).some((v) => v !== undefined) ? d : undefined;
}

function connectOptions(f: ClusterFlags): ConnectOptions {
  const c: ConnectOptions = {};
  if (f.conf) c.conf = f.conf;
  if (f.id) c.user = f.id;
  if (f.keyring) c.keyring = f.keyring;
  if (f.cluster) c.clusterName = f.cluster;
  return c;
}

/** Connections opened by a command; all closed when it ends. */
class Session {
  private readonly open: Rados[] = [];
  async connect(f: ClusterFlags): Promise<Rados> {
    const r = await Rados.connect(connectOptions(f));
    this.open.push(r);
    return r;
  }
  async close(): Promise<void> {
    await Promise.allSettled(this.open.map((r) => r.close()));
  }
}

const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
export function formatBytes(n: number): string {
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${i === 0 ? v : v.toFixed(v >= 100 ? 0 : v >= 10 ? 1 : 2)} ${units[i]}`;
}

type ProgressMode = 'bar' | 'json' | 'off';

/**
 * Byte progress on stderr: a bar (TTY only: value/total, rate, ETA), or JSON lines for
 * supervisors (`--progress-json`: {"progress":{"image","bytesDone","bytesTotal","rate"}},
 * at most 10 a second), or nothing.
 */
class ProgressBar {
  private bar: cliProgress.SingleBar | undefined;
  private t0 = Date.now();
  private started = false;
  private lastJson = 0;

  constructor(private readonly mode: ProgressMode, private readonly label: string) {
    if (mode !== 'bar') return;
    this.bar = new cliProgress.SingleBar(
      {
        format: `${label} [{bar}] {percentage}% | {done} / {all} | {rate}/s | ETA {eta_formatted}`,
        stream: process.stderr,
        hideCursor: true,
        clearOnComplete: false,
        etaBuffer: 20,
        fps: 5,
      },
      cliProgress.Presets.shades_classic,
    );
  }

  update(value: number, total: number): void {
    const rate = value / Math.max(0.001, (Date.now() - this.t0) / 1000);
    if (this.mode === 'json') {
      const now = Date.now();
      if (now - this.lastJson < 100 && value < total) return;
      this.lastJson = now;
      process.stderr.write(`${JSON.stringify({ progress: { image: this.label, bytesDone: value, bytesTotal: total, rate: Math.round(rate) } })}\n`);
      return;
    }
    if (!this.bar) return;
    const payload = { done: formatBytes(value), all: formatBytes(total), rate: formatBytes(rate) };
    if (!this.started) {
      this.started = true;
      this.bar.start(Math.max(total, 1), value, payload);
    } else {
      this.bar.setTotal(Math.max(total, 1));
      this.bar.update(value, payload);
    }
  }

  stop(): void {
    if (this.bar && this.started) this.bar.stop();
    this.bar = undefined;
  }
}

interface GlobalOpts {
  json?: boolean;
  progress?: boolean;
  progressJson?: boolean;
}

function progressMode(g: GlobalOpts): ProgressMode {
  if (g.progressJson) return 'json';
  return process.stderr.isTTY && !g.json && g.progress !== false ? 'bar' : 'off';
}

/** Where machine output goes: stdout, unless stdout carries a stream. */
function emitJson(value: unknown, to: Writable = process.stdout): void {
  to.write(`${JSON.stringify(value, null, 2)}\n`);
}

function inputStream(path: string): Readable {
  return path === '-' ? process.stdin : createReadStream(path);
}

function outputStream(path: string): Writable {
  return path === '-' ? process.stdout : createWriteStream(path, { flags: 'wx' });
}

async function openPool(r: Rados, pool: string, namespace: string): Promise<Pool> {
  return r.openPool(pool, namespace ? { namespace } : {});
}

const controller = new AbortController();

// --- commands -------------------------------------------------------------------------------

function clusterOptions(cmd: Command, dest: boolean): Command {
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

type Action = (session: Session, g: GlobalOpts, ...args: never[]) => Promise<number | void>;

function run(fn: Action) {
  return async (...args: unknown[]) => {
    const cmd = args[args.length - 1] as Command;
    const g = cmd.optsWithGlobals() as GlobalOpts;
    const session = new Session();
    let code: number = EXIT.OK;
    try {
      code = (await fn(session, g, ...(args.slice(0, -1) as never[]))) ?? EXIT.OK;
    } catch (e) {
      code = reportError(e, g);
    } finally {
      await session.close();
    }
    process.exitCode = code;
  };
}

function exitCodeOf(e: unknown): number {
  const err = e as { code?: string; name?: string };
  if (controller.signal.aborted || err.name === 'AbortError' || err.code === 'ABORT_ERR') return EXIT.INTERRUPTED;
  if (e instanceof UsageError || e instanceof TypeError || e instanceof RangeError) return EXIT.USAGE;
  if (typeof err.code === 'string' && err.code.startsWith('ERR_DIFF_')) return EXIT.BAD_STREAM;
  if (typeof err.code === 'string' && REFUSALS.has(err.code)) return EXIT.REFUSED;
  return EXIT.FAILED;
}

function reportError(e: unknown, g: GlobalOpts): number {
  const code = exitCodeOf(e);
  const err = e as { code?: string; message?: string };
  const message = String(err.message ?? e);
  const errCode = code === EXIT.INTERRUPTED ? 'ABORT_ERR' : err.code ?? (code === EXIT.USAGE ? 'ERR_USAGE' : 'ERR_UNKNOWN');
  if (g.json) emitJson({ error: { code: errCode, message } }, jsonSink);
  else process.stderr.write(`rbd-stream: ${message}\n`);
  return code;
}

/** The parts of scripts/cluster.ts the CLI uses (not compiled into dist). */
interface ClusterModule {
  up(o: { dir?: string; mirror?: boolean; names?: string[]; osdMiB?: number; log?: (s: string) => void }): Promise<{
    dir: string; clusters: Record<string, { conf: string; keyring: string; fsid: string; monAddr: string }>;
  }>;
  down(dir?: string): Promise<unknown>;
  status(dir?: string): Promise<{
    dir: string; exists: boolean;
    clusters: Record<string, { name: string; conf: string; reachable: boolean; health?: string; osdsUp?: number; numOsds?: number; error?: string }>;
  }>;
}

/** JSON destination for the current command (stderr when stdout carries a diff stream). */
let jsonSink: Writable = process.stdout;

export function buildProgram(): Command {
  const program = new Command('rbd-stream')
    .description('Ceph RBD replication: snapshot sync between clusters, rbd diff streams, mirroring status')
    .version('0.1.0')
    .option('--json', 'machine-readable output (one JSON document)')
    .option('--no-progress', 'no progress bar (it is only shown on a TTY anyway)')
    .option('--progress-json', 'progress as JSON lines on stderr, TTY or not (for supervisors)')
    .showHelpAfterError()
    .exitOverride();
  program.addHelpText('after', `
Exit codes: 0 ok, 1 failed, 2 usage, 3 sync-pool partial failure, 4 refused by a safety check
(ENOENT, EEXIST, ERR_WRONG_BASE, ERR_TARGET_CHANGED, ERR_NO_COMMON_SNAPSHOT, EBUSY),
5 invalid diff stream (ERR_DIFF_*), 130 interrupted.`);

  // sync
  clusterOptions(program.command('sync'), true)
    .description('replicate one image to another cluster/pool: full the first time, then incremental')
    .argument('<source>', 'pool[/namespace]/image')
    .argument('[dest]', 'pool[/namespace]/image (default: same as source)')
    .option('--prefix <prefix>', 'snapshot prefix owned by sync', 'rbd-sync-')
    .option('--keep-source <n>', 'prefixed snapshots kept on the source', intArg('keep-source', 1), 3)
    .option('--keep-target <n>', 'prefixed snapshots kept on the target', intArg('keep-target', 1), 3)
    .option('--verify', 'checksum the copied extents on both sides afterwards')
    .option('--force', 'overwrite a target that has no common snapshot or was modified')
    .option('--concurrency <n>', 'chunks in flight', intArg('concurrency', 1))
    .option('--write-gap <bytes>', 'write nearby changes as one op, rewriting up to this many unchanged bytes (default 0)', intArg('write-gap'))
    .action(run(async (session, g, src: string, dst: string | undefined, o: Record<string, unknown>) => {
      const s = parseImageSpec(src, 'forbidden');
      const d = parseImageSpec(dst ?? src, 'forbidden');
      const rs = await session.connect(sourceFlags(o));
      const df = destFlags(o);
      const rd = df ? await session.connect(df) : rs;
      const image = await (await openPool(rs, s.pool, s.namespace)).openImage(s.image);
      const target = await openPool(rd, d.pool, d.namespace);
      const bar = new ProgressBar(progressMode(g), s.image);
      try {
        const r = await syncImage({
          source: image,
          target: { pool: target, name: d.image },
          prefix: o.prefix as string,
          keep: { source: o.keepSource as number, target: o.keepTarget as number },
          verify: Boolean(o.verify),
          force: Boolean(o.force),
          concurrency: o.concurrency as number | undefined,
          writeGap: o.writeGap as number | undefined,
          signal: controller.signal,
          onProgress: (p) => bar.update(p.bytesDone, p.bytesTotal),
        });
        bar.stop();
        if (g.json) emitJson(r);
        else {
          const rate = r.bytesWritten / Math.max(r.seconds, 0.001);
          process.stdout.write(
            `${r.image} → ${r.target}: ${r.mode}${r.base ? ` from ${r.base}` : ''} to ${r.snapshot}${r.resumed ? ' (resumed)' : ''}: ` +
            `${formatBytes(r.bytesWritten)} written, ${formatBytes(r.bytesZeroed)} zeroed in ${r.seconds.toFixed(2)} s (${formatBytes(rate)}/s)` +
            `${r.verified ? ', verified' : ''}\n`,
          );
          if (r.pruned.source.length || r.pruned.target.length) {
            process.stdout.write(`pruned: source ${r.pruned.source.join(', ') || '-'}; target ${r.pruned.target.join(', ') || '-'}\n`);
          }
        }
      } finally {
        bar.stop();
      }
    }));

  // sync-pool
  clusterOptions(program.command('sync-pool'), true)
    .description('sync every image of a pool (or those matching --images), N at a time')
    .argument('<source>', 'pool[/namespace]')
    .argument('[dest]', 'pool[/namespace] (default: same as source)')
    .option('--images <glob|list>', "a glob ('db-*') or a comma-separated list of image names")
    .option('--parallel <n>', 'images synced at the same time', intArg('parallel', 1), 2)
    .option('--prefix <prefix>', 'snapshot prefix owned by sync', 'rbd-sync-')
    .option('--keep-source <n>', 'prefixed snapshots kept on the source', intArg('keep-source', 1), 3)
    .option('--keep-target <n>', 'prefixed snapshots kept on the target', intArg('keep-target', 1), 3)
    .option('--verify', 'checksum the copied extents on both sides afterwards')
    .option('--force', 'overwrite targets that have no common snapshot or were modified')
    .option('--concurrency <n>', 'chunks in flight per image', intArg('concurrency', 1))
    .option('--write-gap <bytes>', 'write nearby changes as one op, rewriting up to this many unchanged bytes (default 0)', intArg('write-gap'))
    .action(run(async (session, g, src: string, dst: string | undefined, o: Record<string, unknown>) => {
      const s = parsePoolSpec(src);
      const d = parsePoolSpec(dst ?? src);
      const rs = await session.connect(sourceFlags(o));
      const df = destFlags(o);
      const rd = df ? await session.connect(df) : rs;
      const images = typeof o.images === 'string' ? (o.images.includes(',') ? o.images.split(',').filter(Boolean) : o.images) : undefined;
      const line = (x: SyncPoolImageResult) =>
        x.ok
          ? `ok     ${x.name}: ${x.mode} to ${x.snapshot}, ${formatBytes(x.bytesWritten)} in ${x.seconds.toFixed(2)} s\n`
          : `FAILED ${x.name}: ${x.error.code}: ${x.error.message}\n`;
      const r = await syncPool({
        source: await openPool(rs, s.pool, s.namespace),
        target: await openPool(rd, d.pool, d.namespace),
        images,
        parallel: o.parallel as number,
        prefix: o.prefix as string,
        keep: { source: o.keepSource as number, target: o.keepTarget as number },
        verify: Boolean(o.verify),
        force: Boolean(o.force),
        concurrency: o.concurrency as number | undefined,
        writeGap: o.writeGap as number | undefined,
        signal: controller.signal,
        onImage: g.json ? undefined : (x) => process.stdout.write(line(x)),
      });
      if (g.json) emitJson(r);
      else {
        const m = r.summary;
        process.stdout.write(`${m.ok}/${m.total} images synced, ${m.failed} failed, ${formatBytes(m.bytesWritten)} written in ${m.seconds.toFixed(2)} s\n`);
      }
      if (controller.signal.aborted) return EXIT.INTERRUPTED;
      return r.summary.failed > 0 ? EXIT.PARTIAL : EXIT.OK;
    }));

  // export-diff
  clusterOptions(program.command('export-diff'), false)
    .description('write an rbd diff stream (as `rbd export-diff`) to a file or - (stdout)')
    .argument('<image>', 'pool[/namespace]/image@snap')
    .argument('<path>', 'output file (must not exist), or - for stdout')
    .option('--from-snap <snap>', 'only what changed since this snapshot')
    .addOption(new Option('--export-format <n>', 'stream format').choices(['1', '2']).default('1'))
    .option('--whole-object', 'diff by whole objects (fast-diff)')
    .action(run(async (session, g, spec: string, path: string, o: Record<string, unknown>) => {
      if (path === '-') jsonSink = process.stderr;
      const s = parseImageSpec(spec, 'required');
      const r = await session.connect(sourceFlags(o));
      const image = await (await openPool(r, s.pool, s.namespace)).openImage(s.image, { readOnly: true });
      const bar = new ProgressBar(progressMode(g), s.image);
      const t0 = performance.now();
      let streamBytes = 0;
      let last = { dataBytes: 0, zeroBytes: 0, size: 0 };
      try {
        const stream = exportDiff(image, {
          snapshot: s.snap!,
          fromSnapshot: o.fromSnap as string | undefined,
          format: Number(o.exportFormat) as 1 | 2,
          wholeObject: Boolean(o.wholeObject),
          signal: controller.signal,
          onProgress: (p) => {
            last = p;
            bar.update(p.offset, p.size);
          },
        });
        const count = new Transform({
          transform(chunk: Buffer, _enc, cb) {
            streamBytes += chunk.length;
            cb(null, chunk);
          },
        });
        await pipeline(stream, count, outputStream(path), { end: path !== '-' });
      } finally {
        bar.stop();
      }
      const seconds = (performance.now() - t0) / 1000;
      const summary = {
        image: `${s.pool}${s.namespace ? `/${s.namespace}` : ''}/${s.image}`, snapshot: s.snap, fromSnapshot: o.fromSnap,
        format: Number(o.exportFormat), size: last.size, dataBytes: last.dataBytes, zeroBytes: last.zeroBytes, streamBytes, seconds,
      };
      if (g.json) emitJson(summary, jsonSink);
      else if (path !== '-') process.stdout.write(`exported ${formatBytes(streamBytes)} to ${path} in ${seconds.toFixed(2)} s\n`);
    }));

  // import-diff
  clusterOptions(program.command('import-diff'), false)
    .description('apply an rbd diff stream (v1 or v2) from a file or - (stdin) to an image')
    .argument('<path>', 'input file, or - for stdin')
    .argument('<image>', 'pool[/namespace]/image')
    .option('--force', 'apply even if the target changed since its from-snapshot')
    .action(run(async (session, g, path: string, spec: string, o: Record<string, unknown>) => {
      const s = parseImageSpec(spec, 'forbidden');
      const r = await session.connect(sourceFlags(o));
      const image = await (await openPool(r, s.pool, s.namespace)).openImage(s.image);
      const bar = new ProgressBar(progressMode(g), s.image);
      try {
        const res = await importDiff(inputStream(path), image, {
          force: Boolean(o.force),
          signal: controller.signal,
          onProgress: (p) => bar.update(p.offset, p.size),
        });
        bar.stop();
        if (g.json) emitJson(res);
        else {
          process.stdout.write(
            `imported ${res.fromSnapshot ? `${res.fromSnapshot} → ` : ''}${res.toSnapshot ?? '(head)'}: ${formatBytes(res.bytesWritten)} written, ` +
            `${formatBytes(res.bytesZeroed)} zeroed in ${res.seconds.toFixed(2)} s\n`,
          );
        }
      } finally {
        bar.stop();
        if (path === '-') process.stdin.destroy();
      }
    }));

  // diff
  clusterOptions(program.command('diff'), false)
    .description('list changed extents (as `rbd diff`)')
    .argument('<image>', 'pool[/namespace]/image[@snap]')
    .option('--from-snap <snap>', 'changes since this snapshot')
    .option('--whole-object', 'whole objects (fast-diff)')
    .addOption(new Option('--format <f>', 'output format').choices(['plain', 'json']).default('plain'))
    .option('--pretty-format', 'indent JSON')
    .action(run(async (session, g, spec: string, o: Record<string, unknown>) => {
      const s = parseImageSpec(spec, 'optional');
      const r = await session.connect(sourceFlags(o));
      const image = await (await openPool(r, s.pool, s.namespace)).openImage(s.image, { readOnly: true, ...(s.snap ? { snapshot: s.snap } : {}) });
      const rows: { offset: number; length: number; exists: string }[] = [];
      for await (const batch of image.diff({ fromSnapshot: o.fromSnap as string | undefined, wholeObject: Boolean(o.wholeObject), signal: controller.signal })) {
        for (const e of batch) rows.push({ offset: e.offset, length: e.length, exists: e.exists ? 'true' : 'false' });
      }
      if (g.json || o.format === 'json') {
        process.stdout.write(`${o.prettyFormat ? JSON.stringify(rows, null, 4) : JSON.stringify(rows)}\n`);
        return;
      }
      const table = [['Offset', 'Length', 'Type'], ...rows.map((x) => [String(x.offset), String(x.length), x.exists === 'true' ? 'data' : 'zero'])];
      const w = [0, 1].map((c) => Math.max(...table.map((t) => t[c].length)) + 2);
      process.stdout.write(table.map((t) => `${t[0].padEnd(w[0])}${t[1].padEnd(w[1])}${t[2]}\n`).join(''));
    }));

  // inspect
  program.command('inspect')
    .description('describe an rbd diff stream without applying it')
    .argument('<path>', 'input file, or - for stdin')
    .action(run(async (_session, g, path: string) => {
      const s = await inspectDiff(inputStream(path), { signal: controller.signal });
      if (g.json) return emitJson(s);
      const lines = [
        ['version', `v${s.version}`],
        ['from snapshot', s.fromSnapshot ?? '-'],
        ['to snapshot', s.toSnapshot ?? '-'],
        ...(s.protected !== undefined ? [['protected', String(s.protected)]] : []),
        ['image size', s.size === undefined ? '-' : `${s.size} (${formatBytes(s.size)})`],
        ['data extents', `${s.dataExtents} (${formatBytes(s.dataBytes)})`],
        ['zero extents', `${s.zeroExtents} (${formatBytes(s.zeroBytes)})`],
        ['stream bytes', String(s.streamBytes)],
      ];
      process.stdout.write(lines.map(([k, v]) => `${k.padEnd(15)}${v}\n`).join(''));
    }));

  // mirror status
  const mirror = program.command('mirror').description('rbd mirroring');
  clusterOptions(mirror.command('status'), false)
    .description('pool mirroring summary (health, image states, daemons)')
    .argument('<pool>', 'pool[/namespace]')
    .action(run(async (session, g, spec: string, o: Record<string, unknown>) => {
      const s = parsePoolSpec(spec);
      const r = await session.connect(sourceFlags(o));
      const mp = new MirrorPool(await openPool(r, s.pool, s.namespace));
      const [mode, st] = await Promise.all([mp.getMode(), mp.getStatusSummary()]);
      if (g.json) return emitJson({ pool: spec, mode, ...st });
      const states = Object.entries(st.states).map(([k, v]) => `    ${k}: ${v}`);
      const daemons = st.daemons.map((d) => `    ${d.clientId}${d.hostname ? ` on ${d.hostname}` : ''}: ${d.health}${d.leader ? ' (leader)' : ''}`);
      process.stdout.write(`mode: ${mode}\nhealth: ${st.health}\ndaemon health: ${st.daemonHealth}\nimage health: ${st.imageHealth}\nimages: ${st.total} total\n${states.join('\n')}${states.length ? '\n' : ''}` +
        `${daemons.length ? `daemons:\n${daemons.join('\n')}\n` : ''}`);
    }));

  // cluster up|down|status (the local development clusters)
  const cluster = program.command('cluster').description('local Ceph clusters for development (scripts/cluster.ts)');
  const clusterMod = async () => {
    const here = dirname(fileURLToPath(import.meta.url));
    const candidates = [resolve(here, '../../tools/cluster/index.ts'), resolve(here, '../../tools/cluster/index.js')];
    for (const c of candidates) {
      const url = pathToFileURL(c).href;
      try {
        return (await import(url)) as ClusterModule;
      } catch (e) {
        const code = (e as { code?: string }).code;
        if (code === 'ERR_UNKNOWN_FILE_EXTENSION') {
          // Running from dist/ in a source checkout: load the TypeScript script through tsx.
          try {
            const api = 'tsx/esm/api';
            ((await import(api)) as { register: () => unknown }).register();
            return (await import(`${url}?tsx`)) as ClusterModule;
          } catch { /* fall through to ENOTSUP */ }
        } else if (code !== 'ERR_MODULE_NOT_FOUND') throw e;
      }
    }
    throw Object.assign(new Error('cluster commands need the source checkout (scripts/cluster.ts) and tsx'), { code: 'ENOTSUP' });
  };
  const dirOpt = (c: Command) => c.option('--dir <dir>', 'directory of the cluster set (default <repo>/.clusters)');
  dirOpt(cluster.command('up'))
    .description('start local clusters a and b (memstore)')
    .option('--mirror', 'also start rbd-mirror daemons')
    .option('--names <a,b>', 'cluster names', 'a,b')
    .option('--osd-mb <n>', 'OSD memstore size in MiB', intArg('osd-mb', 256))
    .action(run(async (_s, g, o: Record<string, unknown>) => {
      const m = await clusterMod();
      const set = await m.up({
        dir: o.dir as string | undefined, mirror: Boolean(o.mirror), names: String(o.names).split(','),
        osdMiB: o.osdMb as number | undefined, log: (x) => process.stderr.write(`${x}\n`),
      });
      const out = Object.fromEntries(Object.entries(set.clusters).map(([k, c]) => [k, { conf: c.conf, keyring: c.keyring, fsid: c.fsid, monAddr: c.monAddr }]));
      if (g.json) return emitJson({ dir: set.dir, clusters: out });
      for (const [k, c] of Object.entries(out)) process.stdout.write(`${k}: ${c.conf} (fsid ${c.fsid}, mon ${c.monAddr})\n`);
    }));
  dirOpt(cluster.command('down'))
    .description('stop the local clusters started by `cluster up`')
    .action(run(async (_s, g, o: Record<string, unknown>) => {
      const m = await clusterMod();
      await m.down(o.dir as string | undefined);
      if (g.json) emitJson({ stopped: true });
      else process.stdout.write('stopped\n');
    }));
  dirOpt(cluster.command('status'))
    .description('state of the local clusters')
    .action(run(async (_s, g, o: Record<string, unknown>) => {
      const m = await clusterMod();
      const st = await m.status(o.dir as string | undefined);
      const healthy = st.exists && Object.values(st.clusters).every((c) => c.reachable);
      if (g.json) {
        emitJson(st);
        return healthy ? EXIT.OK : EXIT.FAILED;
      }
      if (!st.exists) {
        process.stdout.write(`no clusters in ${st.dir}\n`);
        return EXIT.FAILED;
      }
      for (const c of Object.values(st.clusters)) {
        process.stdout.write(`${c.name}: ${c.reachable ? c.health ?? 'reachable' : `unreachable${c.error ? ` (${c.error})` : ''}`}, osds up ${c.osdsUp ?? '?'}/${c.numOsds ?? '?'}, conf ${c.conf}\n`);
      }
      return Object.values(st.clusters).every((c) => c.reachable) ? EXIT.OK : EXIT.FAILED;
    }));

  return program;
}

export async function main(argv: string[] = process.argv): Promise<number> {
  const program = buildProgram();
  const onSignal = () => controller.abort();
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    await program.parseAsync(argv);
  } catch (e) {
    if (e instanceof CommanderError) {
      if (e.code === 'commander.helpDisplayed' || e.code === 'commander.version' || e.code === 'commander.help') return EXIT.OK;
      return EXIT.USAGE;
    }
    throw e;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
  return Number(process.exitCode ?? 0);
}

// Run when executed (bin, `node dist/cli.js`, `tsx lib/cli.ts`), not when imported.
const self = fileURLToPath(import.meta.url);
if (process.argv[1] && resolve(process.argv[1]).replace(/\.[cm]?[jt]s$/, '') === self.replace(/\.[cm]?[jt]s$/, '')) {
  main().then(
    (code) => {
      // librados keeps no handles open after close, but never hang on a stray one.
      process.stdout.write('', () => process.exit(code));
    },
    (e) => {
      process.stderr.write(`rbd-stream: ${(e as Error).stack ?? e}\n`);
      process.exit(EXIT.FAILED);
    },
  );
}
