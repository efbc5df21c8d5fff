// import-diff: apply an rbd diff stream from a file or stdin.
import type { Command } from 'commander';
import { importDiff } from '../../transfer/diff-import.js';
import { controller, run } from '../action.js';
import { clusterOptions, inputStream, openPool, parseImageSpec, sourceFlags } from '../options.js';
import { emitJson, formatBytes, ProgressBar, progressMode } from '../output.js';

export function registerImportDiff(program: Command): void {
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
        const res = await importDiff({
          input: inputStream(path),
          target: image,
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
}
