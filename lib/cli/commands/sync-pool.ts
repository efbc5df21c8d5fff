// sync-pool: every image of a pool (or a glob/list of them), N at a time.
import type { Command } from 'commander';
import { syncPool, type SyncPoolImageResult } from '../../transfer/sync.js';
import { controller, EXIT, run } from '../action.js';
import { clusterOptions, destFlags, intArg, openPool, parsePoolSpec, sourceFlags, syncFlags, syncOptions } from '../options.js';
import { emitJson, formatBytes, formatDiscarded } from '../output.js';

export function registerSyncPool(program: Command): void {
  syncOptions(clusterOptions(program.command('sync-pool'), true), {
    force: 'overwrite targets that have no common snapshot or were modified',
    concurrency: 'reads and writes in flight per image (default 4096 shared by the images copied at once)',
  })
    .description('sync every image of a pool (or those matching --images), N at a time')
    .argument('<source>', 'pool[/namespace]')
    .argument('[dest]', 'pool[/namespace] (default: same as source)')
    .option('--images <glob|list>', "a glob ('db-*') or a comma-separated list of image names")
    .option('--parallel <n>', 'images synced at the same time', intArg('parallel', 1), 2)
    .action(run(async (session, g, src: string, dst: string | undefined, o: Record<string, unknown>) => {
      const s = parsePoolSpec(src);
      const d = parsePoolSpec(dst ?? src);
      const rs = await session.connect(sourceFlags(o));
      const df = destFlags(o);
      const rd = df ? await session.connect(df) : rs;
      const images = typeof o.images === 'string' ? (o.images.includes(',') ? o.images.split(',').filter(Boolean) : o.images) : undefined;
      const line = (x: SyncPoolImageResult) =>
        x.ok
          ? `ok     ${x.name}: ${x.mode} to ${x.snapshot}, ${formatBytes(x.bytesWritten)} in ${x.seconds.toFixed(2)} s\n` +
            (x.discarded ? `       ${formatDiscarded(x.target, x.discarded)}` : '')
          : `FAILED ${x.name}: ${x.error.code}: ${x.error.message}\n`;
      const r = await syncPool({
        source: await openPool(rs, s.pool, s.namespace),
        target: await openPool(rd, d.pool, d.namespace),
        images,
        parallel: o.parallel as number,
        ...syncFlags(o),
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
}
