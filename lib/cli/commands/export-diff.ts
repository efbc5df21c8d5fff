// export-diff: an rbd diff stream to a file or stdout.
import { pipeline } from 'node:stream/promises';
import { Transform } from 'node:stream';
import { Option, type Command } from 'commander';
import { controller, run } from '../action.js';
import { clusterOptions, openPool, outputStream, parseImageSpec, sourceFlags } from '../options.js';
import { emitJson, formatBytes, jsonOutput, ProgressBar, progressMode } from '../output.js';

export function registerExportDiff(program: Command): void {
  clusterOptions(program.command('export-diff'), false)
    .description('write an rbd diff stream (as `rbd export-diff`) to a file or - (stdout)')
    .argument('<image>', 'pool[/namespace]/image@snap')
    .argument('<path>', 'output file (must not exist), or - for stdout')
    .option('--from-snap <snap>', 'only what changed since this snapshot')
    .addOption(new Option('--export-format <n>', 'stream format').choices(['1', '2']).default('1'))
    .option('--whole-object', 'diff by whole objects (fast-diff)')
    .action(run(async (session, g, spec: string, path: string, o: Record<string, unknown>) => {
      if (path === '-') jsonOutput.sink = process.stderr;
      const s = parseImageSpec(spec, 'required');
      const r = await session.connect(sourceFlags(o));
      const image = await (await openPool(r, s.pool, s.namespace)).openImage(s.image, { readOnly: true });
      const bar = new ProgressBar(progressMode(g), s.image);
      const t0 = performance.now();
      let streamBytes = 0;
      let last = { dataBytes: 0, zeroBytes: 0, size: 0 };
      try {
        const stream = image.exportDiff({
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
      if (g.json) emitJson(summary, jsonOutput.sink);
      else if (path !== '-') process.stdout.write(`exported ${formatBytes(streamBytes)} to ${path} in ${seconds.toFixed(2)} s\n`);
    }));
}
