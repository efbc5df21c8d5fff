// inspect: describe an rbd diff stream without applying it.
import type { Command } from 'commander';
import { inspectDiff } from '../../transfer/diff-format.js';
import { controller, run } from '../action.js';
import { inputStream } from '../options.js';
import { emitJson, formatBytes } from '../output.js';

export function registerInspect(program: Command): void {
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
}
