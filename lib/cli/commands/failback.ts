// failback (snapshot sync): bring the original site (dest, A) back to the copy in use since a
// disaster (source, B): a sync B→A while B is still in use, the operator stops B's writers, a
// last incremental B→A, then a check that B did not change after it. rbd-mirror's failback is a
// library call (failback()); its CLI would sit under `mirror`, beside `mirror status`.
import { createInterface } from 'node:readline/promises';
import type { Command } from 'commander';
import type { Image } from '../../core/image.js';
import type { Pool } from '../../core/pool.js';
import { syncImage, syncPool, type SyncImageOptions, type SyncPoolImageResult, type SyncPoolResult, type SyncResult } from '../../transfer/sync.js';
import { controller, EXIT, run } from '../action.js';
import { clusterOptions, destFlags, intArg, openPool, parseImageSpec, parsePoolSpec, sourceFlags, syncFlags, syncOptions } from '../options.js';
import { emitJson, formatBytes, formatDiscarded, ProgressBar, progressMode } from '../output.js';

/** Writers of the source were not confirmed stopped: nothing was done (exit code 4, as a safety refusal). */
export class WritersNotStopped extends Error {
  code = 'ERR_WRITERS_NOT_STOPPED';
  constructor(message: string) {
    super(`ERR_WRITERS_NOT_STOPPED: ${message}`); // as codedError's messages
  }
}

/** Whether `image`'s head differs from its snapshot `snap` (size, or any data): writers still active. */
async function changedSince(image: Image, snap: string): Promise<boolean> {
  const [st, s] = await Promise.all([image.stat(), image.getSnapshot(snap)]);
  if (!s || st.size !== s.size) return true;
  for await (const batch of image.diff({ fromSnapshot: snap, wholeObject: true, batchSize: 1 })) if (batch.length > 0) return true;
  return false;
}

async function confirmWritersStopped(source: string): Promise<void> {
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  const onAbort = () => rl.close();
  controller.signal.addEventListener('abort', onAbort, { once: true });
  try {
    const answer = await rl.question(`Stop every writer of ${source} now (VMs, mappings, clients), then type 'yes' to continue: `);
    if (!/^y(es)?$/i.test(answer.trim())) throw new WritersNotStopped(`failback stopped: writers of ${source} not confirmed stopped (answer was not 'yes'); A is as the first sync left it`);
  } catch (e) {
    if (e instanceof WritersNotStopped) throw e;
    controller.signal.throwIfAborted();
    throw new WritersNotStopped(`failback stopped: no confirmation that the writers of ${source} are stopped (${(e as Error).message})`);
  } finally {
    controller.signal.removeEventListener('abort', onAbort);
    rl.close();
  }
}

function roundLine(r: SyncResult): string {
  return `  ${r.mode}${r.base ? ` from ${r.base}` : ''} to ${r.snapshot}${r.resumed ? ' (resumed)' : ''}: ` +
    `${formatBytes(r.bytesWritten)} written, ${formatBytes(r.bytesZeroed)} zeroed in ${r.seconds.toFixed(2)} s\n` +
    (r.discarded ? `  ${formatDiscarded(r.target, r.discarded)}` : '');
}

function poolLine(x: SyncPoolImageResult): string {
  return x.ok ? `  ok     ${x.name}:${roundLine(x).slice(1)}` : `  FAILED ${x.name}: ${x.error.code}: ${x.error.message}\n`;
}

export function registerFailback(program: Command): void {
  syncOptions(clusterOptions(program.command('failback'), true), {
    force: "discard the original's own changes since the common snapshot (otherwise refused: ERR_TARGET_CHANGED)",
    concurrency: 'reads and writes in flight (per image; default 256)',
  })
    .description('snapshot-sync failback: copy the image in use (source, site B) back to the original (dest, site A): a sync while B is in use, stop writers, a last incremental')
    .argument('<source>', 'pool[/namespace]/image in use (site B; with --pool: pool[/namespace])')
    .argument('[dest]', 'the original on site A, same form (default: same spec)')
    .option('--pool', 'fail back every image of a pool (or those matching --images)')
    .option('--images <glob|list>', "with --pool: a glob ('db-*') or a comma-separated list of image names")
    .option('--parallel <n>', 'with --pool: images synced at the same time', intArg('parallel', 1), 2)
    .option('--writers-stopped', "the source's writers are already stopped: do not ask (required when stdin is not a terminal)")
    .action(run(async (session, g, src: string, dst: string | undefined, o: Record<string, unknown>) => {
      const isPool = Boolean(o.pool);
      const s = isPool ? { ...parsePoolSpec(src), image: '' } : parseImageSpec(src, 'forbidden');
      const d = isPool ? { ...parsePoolSpec(dst ?? src), image: '' } : parseImageSpec(dst ?? src, 'forbidden');
      if (!isPool && (o.images !== undefined)) throw new TypeError('--images needs --pool');
      const srcLabel = `${s.pool}${s.namespace ? `/${s.namespace}` : ''}${isPool ? '' : `/${s.image}`}`;
      // Decided before anything is copied: without a way to confirm, nothing is done.
      const writers = o.writersStopped ? 'flag' : process.stdin.isTTY ? 'confirmed' : undefined;
      if (!writers) {
        throw new WritersNotStopped(`failback needs the writers of ${srcLabel} stopped before its last sync: pass --writers-stopped once they are, or run it on a terminal to be asked`);
      }
      const rs = await session.connect(sourceFlags(o));
      const df = destFlags(o);
      const rd = df ? await session.connect(df) : rs;
      const sourcePool = await openPool(rs, s.pool, s.namespace);
      const targetPool = await openPool(rd, d.pool, d.namespace);
      const flags = syncFlags(o);
      const say = (text: string) => { if (!g.json) process.stdout.write(text); };

      if (isPool) {
        const images = typeof o.images === 'string' ? (o.images.includes(',') ? o.images.split(',').filter(Boolean) : o.images) : undefined;
        const round = (force: boolean) => syncPool({
          source: sourcePool, target: targetPool, images, parallel: o.parallel as number, ...flags, force,
          signal: controller.signal, onImage: (x) => say(poolLine(x)),
        });
        say(`step 1/3: sync ${srcLabel} → ${d.pool}${d.namespace ? `/${d.namespace}` : ''} while the source is in use\n`);
        const final = await round(flags.force);
        if (final.summary.failed > 0 || controller.signal.aborted) return poolEnd(g, final, undefined, [], 'stopped after step 1: an image failed (nothing else was done)');
        if (writers === 'confirmed') await confirmWritersStopped(srcLabel);
        say(`step 2/3: writers stopped (${writers === 'flag' ? '--writers-stopped' : 'confirmed'})\nstep 3/3: last incremental sync\n`);
        // Unforced: a change on the target between the two rounds is a new surprise, not the one confirmed.
        const last = await round(false);
        const current = await Promise.all(last.images.map(async (x) => ({ name: x.name, current: x.ok && !(await poolImageChanged(sourcePool, x.name, x.snapshot)), ...(x.ok ? { snapshot: x.snapshot } : {}) })));
        return poolEnd(g, final, last, current, undefined, writers);
      }

      const image = await sourcePool.openImage(s.image);
      const bar = new ProgressBar(progressMode(g), s.image);
      const round = async (force: boolean): Promise<SyncResult> => {
        const opts: SyncImageOptions = {
          source: image, target: { pool: targetPool, name: d.image }, ...flags, force,
          signal: controller.signal, onProgress: (p) => bar.update(p.bytesDone, p.bytesTotal),
        };
        try {
          return await syncImage(opts);
        } finally {
          bar.stop();
        }
      };
      say(`step 1/3: sync ${srcLabel} → ${d.pool}${d.namespace ? `/${d.namespace}` : ''}/${d.image} while the source is in use\n`);
      const final = await round(flags.force);
      say(roundLine(final));
      if (writers === 'confirmed') await confirmWritersStopped(srcLabel);
      say(`step 2/3: writers stopped (${writers === 'flag' ? '--writers-stopped' : 'confirmed'})\nstep 3/3: last incremental sync\n`);
      const last = await round(false);
      say(roundLine(last));
      const current = !(await changedSince(image, last.snapshot));
      if (g.json) {
        emitJson({ source: final.image, target: final.target, writersStopped: writers, current, snapshot: last.snapshot, rounds: { final, last } });
      } else {
        say(current
          ? `${last.target} is current: it holds ${last.image}@${last.snapshot}, and the source has not changed since\n`
          : `${last.target} is NOT current: ${last.image} changed after ${last.snapshot} (writers still active?); stop them and run failback again\n`);
      }
      return current ? EXIT.OK : EXIT.FAILED;
    }));
}

async function poolImageChanged(pool: Pool, name: string, snap: string | undefined): Promise<boolean> {
  if (snap === undefined) return true;
  const img = await pool.openImage(name, { readOnly: true });
  try {
    return await changedSince(img, snap);
  } finally {
    await img.close();
  }
}

function poolEnd(
  g: { json?: boolean }, final: SyncPoolResult, last: SyncPoolResult | undefined,
  images: { name: string; current: boolean; snapshot?: string }[], stopped?: string, writers?: string,
): number {
  const current = last !== undefined && last.summary.failed === 0 && images.every((x) => x.current);
  if (g.json) {
    emitJson({ writersStopped: writers ?? null, current, images, rounds: { final, ...(last ? { last } : {}) }, ...(stopped ? { stopped } : {}) });
  } else if (stopped) {
    process.stdout.write(`${stopped}\n`);
  } else {
    const behind = images.filter((x) => !x.current).map((x) => x.name);
    process.stdout.write(current
      ? `all ${images.length} images are current on the target, and their sources have not changed since\n`
      : `NOT current: ${behind.join(', ')} (failed, or changed after the last sync: writers still active?); run failback again\n`);
  }
  if (controller.signal.aborted) return EXIT.INTERRUPTED;
  if ((last ?? final).summary.failed > 0 || stopped) return EXIT.PARTIAL;
  return current ? EXIT.OK : EXIT.FAILED;
}
