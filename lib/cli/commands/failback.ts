// failback (snapshot sync): bring the original site (dest, A) back to the copy in use since a
// disaster (source, B): a sync B→A while B is still in use, the operator stops B's writers, a
// last incremental B→A, then a check that B did not change after it. With --mirror the same
// switch for images rbd-mirror replicates (failback-mirror.ts): same specs, flags and writer check.
import type { Command } from 'commander';
import type { Image } from '../../core/image.js';
import type { Pool } from '../../core/pool.js';
import { syncImage, syncPool, type SyncImageOptions, type SyncPoolImageResult, type SyncPoolResult, type SyncResult } from '../../transfer/sync.js';
import { controller, EXIT, run } from '../action.js';
import { clusterOptions, destFlags, intArg, openPool, parseImageSpec, parsePoolSpec, sourceFlags, syncFlags, syncOptions, UsageError } from '../options.js';
import { emitJson, formatBytes, formatDiscarded, ProgressBar, progressMode } from '../output.js';
import { checkMirrorFlags, mirrorFailback } from './failback-mirror.js';
import { confirmWritersStopped, WritersNotStopped, writersMode } from './writers.js';

export { WritersNotStopped }; // where it was defined before writers.ts

/** Whether `image`'s head differs from its snapshot `snap` (size, or any data): writers still active. */
async function changedSince(image: Image, snap: string): Promise<boolean> {
  const [st, s] = await Promise.all([image.stat(), image.getSnapshot(snap)]);
  if (!s || st.size !== s.size) return true;
  for await (const batch of image.diff({ fromSnapshot: snap, wholeObject: true, batchSize: 1 })) if (batch.length > 0) return true;
  return false;
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
    force: "discard the original's own changes since the common snapshot (otherwise refused: ERR_TARGET_CHANGED); with --mirror: resolve a split-brain by resyncing A from B (otherwise refused: ERR_SPLIT_BRAIN)",
    concurrency: 'reads and writes in flight (per image; default 4096 shared by the images copied at once)',
  })
    .description('snapshot-sync failback: copy the image in use (source, site B) back to the original (dest, site A): a sync while B is in use, stop writers, a last incremental; --mirror: the same switch with rbd-mirror (demote B, promote A)')
    .argument('<source>', 'pool[/namespace]/image in use (site B; with --pool: pool[/namespace])')
    .argument('[dest]', 'the original on site A, same form (default: same spec)')
    .option('--pool', 'fail back every image of a pool (or those matching --images)')
    .option('--images <glob|list>', "with --pool: a glob ('db-*') or a comma-separated list of image names")
    .option('--parallel <n>', 'with --pool: images synced at the same time', intArg('parallel', 1), 2)
    .option('--writers-stopped', "the source's writers are already stopped: do not ask (required when stdin is not a terminal)")
    .option('--mirror', 'rbd-mirror failback: report B→A replication, stop writers, demote B, promote A (images rbd-mirror replicates; no copy by rbd-stream)')
    .option('--timeout <seconds>', 'with --mirror: bound on each wait (replication, demotion, resync)', intArg('timeout', 1))
    .action(run(async (session, g, src: string, dst: string | undefined, o: Record<string, unknown>) => {
      const isPool = Boolean(o.pool);
      const s = isPool ? { ...parsePoolSpec(src), image: '' } : parseImageSpec(src, 'forbidden');
      const d = isPool ? { ...parsePoolSpec(dst ?? src), image: '' } : parseImageSpec(dst ?? src, 'forbidden');
      if (!isPool && (o.images !== undefined)) throw new TypeError('--images needs --pool');
      const srcLabel = `${s.pool}${s.namespace ? `/${s.namespace}` : ''}${isPool ? '' : `/${s.image}`}`;
      if (o.mirror) checkMirrorFlags(o);
      else if (o.timeout !== undefined) throw new UsageError('--timeout needs --mirror (a sync has no waits to bound)');
      const writers = writersMode(o, srcLabel, o.mirror ? 'demoting it' : 'its last sync');
      const rs = await session.connect(sourceFlags(o));
      const df = destFlags(o);
      const rd = df ? await session.connect(df) : rs;
      const sourcePool = await openPool(rs, s.pool, s.namespace);
      const targetPool = await openPool(rd, d.pool, d.namespace);
      if (o.mirror) {
        return mirrorFailback({
          poolB: sourcePool, poolA: targetPool, image: isPool ? undefined : { b: s.image, a: d.image },
          images: o.images as string | undefined, force: Boolean(o.force), timeoutMs: ((o.timeout as number | undefined) ?? 300) * 1000,
          writers, label: srcLabel, json: Boolean(g.json),
        });
      }
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
