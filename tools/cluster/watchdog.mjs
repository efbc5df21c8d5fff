// The watchdog process started by spawnWatchdog (watchdog.ts): plain Node, no dependencies and no
// TypeScript, so it starts fast and keeps working whatever state the repo or its tooling is in.
// argv: <parent pid> <set dir> <JSON array of daemon binary names>
// Every second: while the parent lives, nothing. Once it is gone, SIGKILLs the set's recorded
// daemons (each checked through /proc, as isOurDaemon in daemons.ts does), removes the set and exits.
// Also exits once the dir, or a state.json it has seen, is gone (the set was taken down normally).
import fs from 'node:fs';
import path from 'node:path';

const [parent, dir] = [Number(process.argv[2]), process.argv[3]];
const bins = new Set(JSON.parse(process.argv[4]));
const statePath = path.join(dir, 'state.json');
function alive(pid) { try { process.kill(pid, 0); return true; } catch (e) { return e.code === 'EPERM'; } }
function ours(pid, conf) {
  try {
    const st = fs.readFileSync('/proc/' + pid + '/stat', 'utf8');
    if (/^[ZX]/.test(st.slice(st.lastIndexOf(')') + 2))) return false;
    const argv = fs.readFileSync('/proc/' + pid + '/cmdline', 'utf8').split('\0').filter(Boolean);
    if (argv.length === 0 || !argv.includes(conf)) return false;
    // A chroot'ed daemon may still be in a wrapper stage (release.ts) that execs into it.
    return bins.has(path.basename(argv[0])) ||
      (['unshare', 'sh', 'chroot'].includes(path.basename(argv[0])) && argv.includes('rbd-stream-chroot') && argv.some((a) => bins.has(a)));
  } catch { return false; }
}
let seen = false;
setInterval(() => {
  if (!fs.existsSync(dir)) process.exit(0);
  if (!fs.existsSync(statePath)) { if (seen) process.exit(0); if (alive(parent)) return; }
  seen = true;
  if (alive(parent)) return;
  let s; try { s = JSON.parse(fs.readFileSync(statePath, 'utf8')); } catch { process.exit(0); }
  for (const c of Object.values(s.clusters || {})) {
    for (const pid of Object.values(c.pids || {})) if (pid && ours(pid, c.conf)) { try { process.kill(pid, 'SIGKILL'); } catch {} }
    if (path.resolve(c.dir).startsWith(path.resolve(dir) + '/')) fs.rmSync(c.dir, { recursive: true, force: true });
  }
  fs.rmSync(statePath, { force: true });
  try { fs.rmdirSync(dir); } catch {}
  process.exit(0);
}, 1000);
