// mirror status: a pool's mirroring summary.
import type { Command } from 'commander';
import { run } from '../action.js';
import { clusterOptions, openPool, parsePoolSpec, sourceFlags } from '../options.js';
import { emitJson } from '../output.js';

export function registerMirror(program: Command): void {
  const mirror = program.command('mirror').description('rbd mirroring');
  clusterOptions(mirror.command('status'), false)
    .description('pool mirroring summary (health, image states, daemons)')
    .argument('<pool>', 'pool[/namespace]')
    .action(run(async (session, g, spec: string, o: Record<string, unknown>) => {
      const s = parsePoolSpec(spec);
      const r = await session.connect(sourceFlags(o));
      const mp = (await openPool(r, s.pool, s.namespace)).mirror;
      const [mode, st] = await Promise.all([mp.getMode(), mp.getStatusSummary()]);
      if (g.json) return emitJson({ pool: spec, mode, ...st });
      const states = Object.entries(st.states).map(([k, v]) => `    ${k}: ${v}`);
      const daemons = st.daemons.map((d) => `    ${d.clientId}${d.hostname ? ` on ${d.hostname}` : ''}: ${d.health}${d.leader ? ' (leader)' : ''}`);
      process.stdout.write(`mode: ${mode}\nhealth: ${st.health}\ndaemon health: ${st.daemonHealth}\nimage health: ${st.imageHealth}\nimages: ${st.total} total\n${states.join('\n')}${states.length ? '\n' : ''}` +
        `${daemons.length ? `daemons:\n${daemons.join('\n')}\n` : ''}`);
    }));
}
