// sync-group: one crash-consistent round of a consistency group (group snapshot, members copied,
// the target group snapshotted under the same name).
import type { Command } from 'commander';
import { syncGroup } from '../../transfer/sync-group.js';
import { controller, run } from '../action.js';
import { clusterOptions, destFlags, intArg, openPool, sourceFlags, syncFlags, syncOptions, UsageError } from '../options.js';
import { emitJson, formatBytes, ProgressBar, progressMode } from '../output.js';

/** Source: pool[/namespace]/group. Dest: pool, pool/group or pool/namespace/group (a namespace needs the group named). */
function parseGroupSpec(spec: string, dest: boolean): { pool: string; namespace: string; group?: string } {
  const parts = spec.split('/');
  if (parts.some((p) => p === '') || spec.includes('@') || parts.length > 3 || (!dest && parts.length < 2)) {
    throw new UsageError(`invalid group spec '${spec}' (expected ${dest ? 'pool[/group] or pool/namespace/group' : 'pool[/namespace]/group'})`);
  }
  if (parts.length === 1) return { pool: parts[0], namespace: '' };
  if (parts.length === 2) return { pool: parts[0], namespace: '', group: parts[1] };
  return { pool: parts[0], namespace: parts[1], group: parts[2] };
}

export function registerSyncGroup(program: Command): void {
  syncOptions(clusterOptions(program.command('sync-group'), true), {
    force: 'overwrite target members that share no group snapshot with the source or were modified',
    concurrency: 'reads and writes in flight per member (default 4096 shared by the members copied at once)',
  })
    .description('replicate a consistency group crash-consistently: a group snapshot, every member copied, the same group snapshot on the target')
    .argument('<source>', 'pool[/namespace]/group')
    .argument('<dest>', 'pool[/group] or pool/namespace/group (group default: the source group\'s name)')
    .option('--parallel <n>', 'members copied at the same time', intArg('parallel', 1), 4)
    .action(run(async (session, g, src: string, dst: string, o: Record<string, unknown>) => {
      const s = parseGroupSpec(src, false);
      const d = parseGroupSpec(dst, true);
      const rs = await session.connect(sourceFlags(o));
      const df = destFlags(o);
      const rd = df ? await session.connect(df) : rs;
      const group = await (await openPool(rs, s.pool, s.namespace)).openGroup(s.group!);
      const target = await openPool(rd, d.pool, d.namespace);
      const bar = new ProgressBar(progressMode(g), s.group!);
      try {
        const r = await syncGroup({
          source: group,
          target: { pool: target, ...(d.group ? { group: d.group } : {}) },
          parallel: o.parallel as number,
          ...syncFlags(o),
          signal: controller.signal,
          onProgress: (p) => bar.update(p.bytesDone, p.bytesTotal),
        });
        bar.stop();
        if (g.json) emitJson(r);
        else {
          process.stdout.write(
            `${r.group} → ${r.target}: ${r.base ? `from ${r.base}` : 'full'} to ${r.snapshot} (${r.method})${r.resumed ? ' (resumed)' : ''}: ` +
            `${r.members.length} members, ${formatBytes(r.bytesWritten)} written, ${formatBytes(r.bytesZeroed)} zeroed in ${r.seconds.toFixed(2)} s` +
            `${r.verified ? ', verified' : ''}\n`,
          );
          for (const m of r.members) {
            process.stdout.write(`  ${m.image}: ${m.skipped ? 'already copied' : `${m.mode}, ${formatBytes(m.bytesWritten)}`}${m.resumed ? ' (resumed)' : ''}\n`);
          }
          if (r.added.length) process.stdout.write(`added to the target group: ${r.added.join(', ')}\n`);
          if (r.removed.length) process.stdout.write(`removed from the target group (images kept): ${r.removed.join(', ')}\n`);
          if (r.pruned.source.length || r.pruned.target.length) {
            process.stdout.write(`pruned: source ${r.pruned.source.join(', ') || '-'}; target ${r.pruned.target.join(', ') || '-'}\n`);
          }
        }
      } finally {
        bar.stop();
      }
    }));
}
