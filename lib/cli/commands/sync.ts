// sync: one image, full the first time, then incremental.
import type { Command } from 'commander';
import { syncImage } from '../../transfer/sync.js';
import { controller, run } from '../action.js';
import { clusterOptions, destFlags, openPool, parseImageSpec, sourceFlags, syncFlags, syncOptions } from '../options.js';
import { emitJson, formatBytes, formatDiscarded, ProgressBar, progressMode } from '../output.js';

export function registerSync(program: Command): void {
  syncOptions(clusterOptions(program.command('sync'), true), {
    force: 'overwrite a target that has no common snapshot or was modified',
    concurrency: 'reads and writes in flight (default 4096)',
  })
    .description('replicate one image to another cluster/pool: full the first time, then incremental')
    .argument('<source>', 'pool[/namespace]/image')
    .argument('[dest]', 'pool[/namespace]/image (default: same as source)')
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
          ...syncFlags(o),
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
          if (r.discarded) process.stdout.write(formatDiscarded(r.target, r.discarded));
          if (r.pruned.source.length || r.pruned.target.length) {
            process.stdout.write(`pruned: source ${r.pruned.source.join(', ') || '-'}; target ${r.pruned.target.join(', ') || '-'}\n`);
          }
        }
      } finally {
        bar.stop();
      }
    }));
}
