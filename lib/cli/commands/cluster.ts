// cluster up|down|status (the local development clusters)
import { dirname, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { Command } from 'commander';
import { EXIT, run } from '../action.js';
import { intArg } from '../options.js';
import { emitJson } from '../output.js';

/** The parts of scripts/cluster.ts the CLI uses (not compiled into dist). */
interface ClusterModule {
  up(o: { dir?: string; mirror?: boolean; names?: string[]; osdMiB?: number; log?: (s: string) => void }): Promise<{
    dir: string; clusters: Record<string, { conf: string; keyring: string; fsid: string; monAddr: string }>;
  }>;
  down(dir?: string): Promise<unknown>;
  status(dir?: string): Promise<{
    dir: string; exists: boolean;
    clusters: Record<string, { name: string; conf: string; reachable: boolean; health?: string; osdsUp?: number; numOsds?: number; error?: string }>;
  }>;
}

export function registerCluster(program: Command): void {
  const cluster = program.command('cluster').description('local Ceph clusters for development (scripts/cluster.ts)');
  const clusterMod = async () => {
    const here = dirname(fileURLToPath(import.meta.url));
    const candidates = [resolve(here, '../../tools/cluster/index.ts'), resolve(here, '../../tools/cluster/index.js')];
    for (const c of candidates) {
      const url = pathToFileURL(c).href;
      try {
        return (await import(url)) as ClusterModule;
      } catch (e) {
        const code = (e as { code?: string }).code;
        if (code === 'ERR_UNKNOWN_FILE_EXTENSION') {
          // Running from dist/ in a source checkout: load the TypeScript script through tsx.
          try {
            const api = 'tsx/esm/api';
            ((await import(api)) as { register: () => unknown }).register();
            return (await import(`${url}?tsx`)) as ClusterModule;
          } catch { /* fall through to ENOTSUP */ }
        } else if (code !== 'ERR_MODULE_NOT_FOUND') throw e;
      }
    }
    throw Object.assign(new Error('cluster commands need the source checkout (scripts/cluster.ts) and tsx'), { code: 'ENOTSUP' });
  };
  const dirOpt = (c: Command) => c.option('--dir <dir>', 'directory of the cluster set (default <repo>/.clusters)');
  dirOpt(cluster.command('up'))
    .description('start local clusters a and b (memstore)')
    .option('--mirror', 'also start rbd-mirror daemons')
    .option('--names <a,b>', 'cluster names', 'a,b')
    .option('--osd-mb <n>', 'OSD memstore size in MiB', intArg('osd-mb', 256))
    .action(run(async (_s, g, o: Record<string, unknown>) => {
      const m = await clusterMod();
      const set = await m.up({
        dir: o.dir as string | undefined, mirror: Boolean(o.mirror), names: String(o.names).split(','),
        osdMiB: o.osdMb as number | undefined, log: (x) => process.stderr.write(`${x}\n`),
      });
      const out = Object.fromEntries(Object.entries(set.clusters).map(([k, c]) => [k, { conf: c.conf, keyring: c.keyring, fsid: c.fsid, monAddr: c.monAddr }]));
      if (g.json) return emitJson({ dir: set.dir, clusters: out });
      for (const [k, c] of Object.entries(out)) process.stdout.write(`${k}: ${c.conf} (fsid ${c.fsid}, mon ${c.monAddr})\n`);
    }));
  dirOpt(cluster.command('down'))
    .description('stop the local clusters started by `cluster up`')
    .action(run(async (_s, g, o: Record<string, unknown>) => {
      const m = await clusterMod();
      await m.down(o.dir as string | undefined);
      if (g.json) emitJson({ stopped: true });
      else process.stdout.write('stopped\n');
    }));
  dirOpt(cluster.command('status'))
    .description('state of the local clusters')
    .action(run(async (_s, g, o: Record<string, unknown>) => {
      const m = await clusterMod();
      const st = await m.status(o.dir as string | undefined);
      const healthy = st.exists && Object.values(st.clusters).every((c) => c.reachable);
      if (g.json) {
        emitJson(st);
        return healthy ? EXIT.OK : EXIT.FAILED;
      }
      if (!st.exists) {
        process.stdout.write(`no clusters in ${st.dir}\n`);
        return EXIT.FAILED;
      }
      for (const c of Object.values(st.clusters)) {
        process.stdout.write(`${c.name}: ${c.reachable ? c.health ?? 'reachable' : `unreachable${c.error ? ` (${c.error})` : ''}`}, osds up ${c.osdsUp ?? '?'}/${c.numOsds ?? '?'}, conf ${c.conf}\n`);
      }
      return Object.values(st.clusters).every((c) => c.reachable) ? EXIT.OK : EXIT.FAILED;
    }));
}
