// failover: site A is lost; B's snapshot-sync copies rolled back to their newest completed round
// (an interrupted round's partial writes undone, its checkpoint removed), so B can be used.
import type { Command } from 'commander';
import { syncFailover, type SyncFailoverImageResult } from '../../transfer/sync-failover.js';
import { controller, EXIT, run } from '../action.js';
import { clusterOptions, openPool, parseImageSpec, parsePoolSpec, sourceFlags } from '../options.js';
import { emitJson } from '../output.js';

const line = (x: SyncFailoverImageResult) =>
  x.ok
    ? `ok     ${x.name}: at ${x.snapshot}${x.rolledBack ? ' (head rolled back)' : ''}${x.checkpointRemoved ? ' (interrupted round dropped)' : ''}` +
      `${x.failedOverAt ? ` (failed over already, ${x.failedOverAt}: left as it is)` : ''}\n`
    : `FAILED ${x.name}: ${x.error.code}: ${x.error.message}\n`;

export function registerFailover(program: Command): void {
  clusterOptions(program.command('failover'), false)
    .description("snapshot-sync failover (site A lost): each copy on B rolled back to its newest completed sync round (--group: every member to the group's newest group snapshot), an interrupted round's checkpoint removed; refused while another live client has an image open")
    .argument('<spec>', 'pool[/namespace]/image on B (with --pool: pool[/namespace]; with --group: pool[/namespace]/group)')
    .option('--pool', 'every image of the pool (or those matching --images)')
    .option('--group', "a sync-group copy: every member to the group's newest group snapshot, all members or none")
    .option('--images <glob|list>', "with --pool: a glob ('db-*') or a comma-separated list of image names")
    .option('--prefix <prefix>', 'snapshot prefix owned by sync', 'rbd-sync-')
    .option('--force', 'roll back a head written since its newest sync snapshot, and ignore lock owners (discards those writes)')
    .action(run(async (session, g, spec: string, o: Record<string, unknown>) => {
      const isPool = Boolean(o.pool);
      const isGroup = Boolean(o.group);
      if (isPool && isGroup) throw new TypeError('--pool and --group exclude each other');
      if (!isPool && o.images !== undefined) throw new TypeError('--images needs --pool');
      // A group spec has an image spec's shape: pool[/namespace]/name.
      const s = isPool ? { ...parsePoolSpec(spec), image: '' } : parseImageSpec(spec, 'forbidden');
      const pool = await openPool(await session.connect(sourceFlags(o)), s.pool, s.namespace);
      const common = { pool, prefix: o.prefix as string, force: Boolean(o.force), signal: controller.signal };
      if (isGroup) {
        const r = await syncFailover({ ...common, group: s.image });
        if (g.json) emitJson(r);
        else {
          process.stdout.write(`group ${s.image}: every member at ${r.group!.snapshot}\n`);
          for (const x of r.images) process.stdout.write(line(x));
        }
        return EXIT.OK;
      }
      const images = isPool
        ? (typeof o.images === 'string' ? (o.images.includes(',') ? o.images.split(',').filter(Boolean) : o.images) : undefined)
        : [s.image];
      const r = await syncFailover({ ...common, images });
      if (!isPool) {
        const x = r.images[0];
        if (!x.ok) throw Object.assign(new Error(`${x.error.message}`), { code: x.error.code });
        if (g.json) emitJson(x);
        else process.stdout.write(line(x));
        return EXIT.OK;
      }
      if (g.json) emitJson(r);
      else {
        for (const x of r.images) process.stdout.write(line(x));
        process.stdout.write(`${r.summary.ok}/${r.summary.total} images ready, ${r.summary.rolledBack} rolled back, ${r.summary.failed} failed\n`);
      }
      return r.summary.failed > 0 ? EXIT.PARTIAL : EXIT.OK;
    }));
}
