/**
 * Other Ceph releases: daemons (and CLIs) run from a Debian chroot made by
 * scripts/release-chroot.mjs (bookworm = Pacific, trixie = Reef, sid = Tentacle).
 *
 * Every program is started as
 *   unshare --mount --propagation private -- sh -c <mounts; exec chroot ...> ...
 * i.e. in a private mount namespace of its own: /proc, /sys, /dev (with pts), a fresh /tmp and the
 * bind mounts (the cluster directory, at the SAME path, so one ceph.conf is valid on both sides)
 * exist for that process only and vanish with it. Nothing is mounted in the host's namespace, so
 * nothing has to be tracked or unmounted, and nothing another user of the chroot relies on can be
 * pulled away. Each step execs the next, so the spawned pid ends up being the daemon itself
 * (/proc/<pid>/cmdline then reads `ceph-mon -f -i a -c <conf>`, as on the host). Daemons share the
 * host's network namespace: host clients reach them on 127.0.0.1 through the same ceph.conf.
 */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export type Release = 'pacific' | 'reef' | 'tentacle';
export const RELEASES: readonly Release[] = ['pacific', 'reef', 'tentacle'];

const SCRIPT = fileURLToPath(new URL('../../scripts/release-chroot.mjs', import.meta.url));

/** 'host' (or '') means the host's own Ceph: undefined. Throws on anything else unknown. */
export function parseRelease(s: string | undefined): Release | undefined {
  if (s === undefined || s === '' || s === 'host') return undefined;
  if ((RELEASES as readonly string[]).includes(s)) return s as Release;
  throw new RangeError(`unknown release ${JSON.stringify(s)}; one of: host, ${RELEASES.join(', ')}`);
}

/**
 * The release `up` uses when none is given: RBD_STREAM_RELEASE, else the host's. The release test
 * runner sets it so that test files starting clusters of their own get that release too.
 */
export function defaultRelease(): Release | undefined {
  return parseRelease(process.env.RBD_STREAM_RELEASE);
}

const roots = new Map<Release, string>();

/** The chroot of `release` (built on first use, which takes a minute or two and needs root). */
export function releaseRoot(release: Release): string {
  const hit = roots.get(release);
  if (hit) return hit;
  const r = spawnSync(process.execPath, [SCRIPT, release], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
  const root = r.stdout?.trim();
  if (r.status !== 0 || !root) throw new Error(`node ${SCRIPT} ${release} failed (exit ${r.status ?? r.signal})`);
  roots.set(release, root);
  return root;
}

/**
 * True if the release's monmaptool takes `--auth-allowed-ciphers`: such releases (Tentacle 20.2.4
 * on Debian sid) keep the allowed cephx ciphers in the monmap, default aes256k only, which no
 * Pacific or Reef client speaks (they fail with "handle_auth_bad_method ... Permission denied").
 */
export function monmapHasCiphers(root: string): boolean {
  const [file, args] = inRoot(root, 'monmaptool', ['--help']);
  const r = spawnSync(file, args, { encoding: 'utf8', timeout: 30_000 });
  return `${r.stdout ?? ''}${r.stderr ?? ''}`.includes('--auth-allowed-ciphers');
}

/** A directory of the host made visible inside the chroot (at `dst`, default the same path). */
export interface Bind { src: string; dst?: string }

// $1 root, $2 working directory inside, $3 number of binds, then src/dst pairs, then the command.
// /tmp is a fresh tmpfs: mount points for binds below it are made there, not in the cached chroot.
const ENTER = `set -e
r=$1; cwd=$2; n=$3; shift 3
mount -t proc proc "$r/proc"
mount --rbind /sys "$r/sys"
mount --rbind /dev "$r/dev"
mount -t tmpfs -o mode=1777 tmpfs "$r/tmp"
while [ "$n" -gt 0 ]; do
  mkdir -p "$r$2"
  mount --rbind "$1" "$r$2"
  shift 2; n=$((n - 1))
done
exec chroot "$r" /bin/sh -c 'cd "$1" && shift && exec "$@"' rbd-stream-chroot "$cwd" "$@"`;

/**
 * How the wrapper stages (before the last exec) look in /proc/<pid>/cmdline: argv[0] one of these,
 * and WRAPPER_MARK among the arguments (followed by the command and its arguments).
 */
export const WRAPPER_BINARIES = new Set(['unshare', 'sh', 'chroot']);
export const WRAPPER_MARK = 'rbd-stream-chroot';

/**
 * [file, args] that run `cmd args` inside `root` with `binds` (parents before children), in
 * `cwd` (a path inside the chroot, default /). For root '/' (the host), the command itself.
 */
export function inRoot(root: string, cmd: string, args: string[], opts: { binds?: Bind[]; cwd?: string } = {}): [string, string[]] {
  if (root === '/') return [cmd, args];
  const binds = opts.binds ?? [];
  return ['unshare', ['--mount', '--propagation', 'private', '--', 'sh', '-c', ENTER, WRAPPER_MARK,
    root, opts.cwd ?? '/', String(binds.length), ...binds.flatMap((b) => [b.src, b.dst ?? b.src]), cmd, ...args]];
}
