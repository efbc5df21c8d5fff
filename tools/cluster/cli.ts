/**
 * npm run cluster -- up|down|status [--dir D] [--names a,b] [--osd-mb N] [--mirror] [--fast-mon] [--osd-op-threads N]
 *                    [--objectstore memstore|bluestore] [--base-port P] [--release host|pacific|reef|tentacle|a=R,b=R] [--json]
 */
import { resolve } from 'node:path';
import { envExports } from './conf.js';
import { down } from './daemons.js';
import { noop } from './exec.js';
import { parseRelease } from './release.js';
import { status } from './status.js';
import { DEFAULT_DIR, type UpOptions } from './types.js';
import { up } from './up.js';

function parseArgs(argv: string[]) {
  const o: { cmd?: string; dir?: string; names?: string[]; osdMiB?: number; mirror: boolean; fastMon?: boolean; osdOpThreads?: number; objectstore?: UpOptions['objectstore']; json: boolean; basePort?: number; release?: UpOptions['release']; releases?: UpOptions['releases'] } =
    { mirror: false, json: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const val = () => {
      const eq = a.indexOf('=');
      if (eq >= 0) return a.slice(eq + 1);
      const v = argv[++i];
      if (v === undefined) throw new Error(`${a} needs a value`);
      return v;
    };
    const key = a.split('=')[0];
    switch (key) {
      case '--dir': o.dir = val(); break;
      case '--names': o.names = val().split(',').map((s) => s.trim()).filter(Boolean); break;
      case '--osd-mb': o.osdMiB = Number(val()); break;
      case '--base-port': o.basePort = Number(val()); break;
      case '--mirror': o.mirror = true; break;
      case '--fast-mon': o.fastMon = true; break;
      case '--osd-op-threads': o.osdOpThreads = Number(val()); break;
      case '--objectstore': o.objectstore = val() as UpOptions['objectstore']; break;
      case '--release': {
        const v = val();
        if (v.includes('=')) {
          // Per cluster: --release a=host,b=reef
          o.releases = Object.fromEntries(v.split(',').map((kv) => {
            const [n, r] = kv.split('=');
            return [n.trim(), parseRelease(r?.trim()) ?? 'host'];
          }));
        } else {
          o.release = parseRelease(v) ?? 'host';
        }
        break;
      }
      case '--json': o.json = true; break;
      case '-h': case '--help': o.cmd = 'help'; break;
      default:
        if (a.startsWith('-') || o.cmd) throw new Error(`unknown argument ${a}`);
        o.cmd = a;
    }
  }
  return o;
}

const USAGE = `usage: npm run cluster -- up|down|status [--dir D] [--names a,b] [--osd-mb N] [--mirror] [--fast-mon] [--osd-op-threads N] [--objectstore memstore|bluestore] [--base-port P] [--release R] [--json]
  up      start (or reuse) a set of independent local Ceph clusters (mon+mgr+memstore osd [+rbd-mirror])
  down    stop exactly the recorded daemons and remove the set's data
  status  health and daemon pids of each cluster
  --fast-mon  mon commits after 50 ms, not 1 s (snapshot ops ~0.1 s instead of ~0.9 s; tests use it)
  --osd-op-threads N  OSD op threads (default 1: more lets memstore crash when snapshots are trimmed)
  --objectstore S  memstore (default, RAM) or bluestore (a sparse file per OSD; survives an OSD restart)
  --release R  run the daemons of Ceph R (pacific, reef, tentacle) from its Debian chroot
               (scripts/release-chroot.mjs builds it on first use); host (default) = the host's Ceph;
               default from RBD_STREAM_RELEASE if set; per cluster: --release a=host,b=reef
default dir: ${DEFAULT_DIR}`;

async function main() {
  const o = parseArgs(process.argv.slice(2));
  const dir = resolve(o.dir ?? DEFAULT_DIR);
  const err = (s: string) => process.stderr.write(s + '\n');
  switch (o.cmd) {
    case 'up': {
      const t0 = Date.now();
      const set = await up({ dir, names: o.names, osdMiB: o.osdMiB, mirror: o.mirror, fastMon: o.fastMon, osdOpThreads: o.osdOpThreads, objectstore: o.objectstore, basePort: o.basePort, release: o.release, releases: o.releases,
        log: o.json ? noop : err });
      const secs = (Date.now() - t0) / 1000;
      if (o.json) {
        process.stdout.write(JSON.stringify({ ...set, elapsedSeconds: secs }, null, 2) + '\n');
        break;
      }
      const out: string[] = [`Clusters ready in ${dir} (${secs.toFixed(1)} s):`, ''];
      for (const c of Object.values(set.clusters)) {
        out.push(`  ${c.name}: ${c.release ?? 'host release'}  fsid ${c.fsid}  mon ${c.monAddr}  pids mon ${c.pids.mon} mgr ${c.pids.mgr} osd ${c.pids.osd}` +
          (c.pids.mirror ? ` rbd-mirror ${c.pids.mirror}` : ''));
      }
      out.push('', 'Use them from a shell:', '');
      out.push(...envExports(set).map((l) => '  ' + l));
      out.push('');
      for (const c of Object.values(set.clusters)) {
        out.push(`  rbd -c ${c.conf} ls`);
        out.push(`  ceph -c ${c.conf} -s`);
      }
      out.push('', `Stop: npm run cluster -- down${o.dir ? ` --dir ${dir}` : ''}`);
      process.stdout.write(out.join('\n') + '\n');
      break;
    }
    case 'down': {
      await down(dir);
      if (!o.json) process.stdout.write(`stopped and removed cluster set in ${dir}\n`);
      else process.stdout.write(JSON.stringify({ dir, down: true }) + '\n');
      break;
    }
    case 'status': {
      const st = await status(dir);
      if (o.json) {
        process.stdout.write(JSON.stringify(st, null, 2) + '\n');
      } else if (!st.exists) {
        process.stdout.write(`no cluster set in ${dir}\n`);
      } else {
        const out: string[] = [`cluster set ${dir}`];
        for (const c of Object.values(st.clusters)) {
          const pids = Object.entries(c.daemons)
            .map(([k, d]) => `${k} ${d.pid ?? '-'}${d.alive ? '' : ' (dead)'}`).join(', ');
          if (c.reachable) {
            out.push(`  ${c.name}: ${c.health}${c.healthChecks?.length ? ` [${c.healthChecks.join(', ')}]` : ''}; ` +
              `osd ${c.osdsUp}/${c.numOsds} up, ${c.osdsIn} in; pgs ${c.pgsActive}/${c.pgs} active; ` +
              `mgr ${c.mgrAvailable ? 'available' : 'unavailable'}`);
          } else {
            out.push(`  ${c.name}: UNREACHABLE (${c.error})`);
          }
          out.push(`     conf ${c.conf}`, `     pids: ${pids}`);
        }
        process.stdout.write(out.join('\n') + '\n');
      }
      const bad = !st.exists || Object.values(st.clusters).some((c) => !c.reachable);
      process.exitCode = bad ? 1 : 0;
      break;
    }
    default:
      process.stdout.write(USAGE + '\n');
      if (o.cmd !== 'help') process.exitCode = 2;
  }
}

main().catch((e) => {
  process.stderr.write(`cluster: ${(e as Error).message}\n`);
  process.exit(1);
});
