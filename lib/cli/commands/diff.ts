// diff: changed extents, printed as `rbd diff` prints them.
import { Option, type Command } from 'commander';
import { controller, run } from '../action.js';
import { clusterOptions, openPool, parseImageSpec, sourceFlags } from '../options.js';

export function registerDiff(program: Command): void {
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
}
