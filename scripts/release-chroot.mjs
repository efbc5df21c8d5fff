#!/usr/bin/env node
// node scripts/release-chroot.mjs <pacific|reef|tentacle>
//
// Makes (once) a Debian chroot holding one Ceph release's daemons, CLIs, headers and Node, for
// `npm run cluster -- up --release <r>` and `npm run test:release -- <r>`, and prints its root.
// Plain Node with no dependencies: it runs before node_modules exist.
//
// The chroots are built by mmdebstrap from Debian's own packages and cached outside the repo
// (RBD_STREAM_CHROOT_CACHE, default /var/cache/rbd-stream/chroots/<suite>), so they survive clean
// clones. Building is atomic (into <suite>.tmp, then renamed) and guarded by <suite>.lock, so
// concurrent callers build it once. Needs root (mmdebstrap's root mode; the daemons run with chroot).
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

/** Release → Debian suite whose archive carries it. Debian has no Squid (19.2). */
export const RELEASES = {
  pacific: { suite: 'bookworm', ceph: '16.2' },
  reef: { suite: 'trixie', ceph: '18.2' },
  tentacle: { suite: 'sid', ceph: '20.2' },
};

export const PACKAGES = [
  'ceph-mon', 'ceph-osd', 'ceph-mgr', 'ceph-common', 'rbd-mirror',
  'librbd-dev', 'librados-dev', 'libradospp-dev', 'libxxhash-dev', 'nodejs', 'npm', 'g++', 'make', 'python3',
];

/** Files whose presence means a finished chroot (checked for ones built before this script, too). */
const REQUIRED = [
  'usr/bin/ceph-mon', 'usr/bin/ceph-osd', 'usr/bin/ceph-mgr', 'usr/bin/rbd-mirror', 'usr/bin/rbd', 'usr/bin/ceph',
  'usr/bin/node', 'usr/bin/g++', 'usr/bin/make', 'usr/include/rbd/librbd.h', 'usr/include/rados/librados.h',
  'var/lib/dpkg/status',
];

/** Packages added to PACKAGES after chroots were built without them: installed into such a chroot. */
const ADDED = [{ pkg: 'libradospp-dev', file: 'usr/include/rados/librados.hpp' }];

export const CACHE_DIR = process.env.RBD_STREAM_CHROOT_CACHE || '/var/cache/rbd-stream/chroots';

const log = (s) => process.stderr.write(`[release-chroot] ${s}\n`);

export function chrootRoot(release) {
  const r = RELEASES[release];
  if (!r) throw new Error(`unknown release ${JSON.stringify(release)}; one of: ${Object.keys(RELEASES).join(', ')}`);
  return path.join(CACHE_DIR, r.suite);
}

export function isComplete(root) {
  return REQUIRED.every((f) => fs.existsSync(path.join(root, f)));
}

function alive(pid) {
  try { process.kill(pid, 0); return true; } catch (e) { return e.code === 'EPERM'; }
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Takes <root>.lock (exclusive create holding our pid); waits while a live process holds it. */
async function lock(lockPath) {
  for (let waited = 0; ; waited++) {
    try {
      fs.writeFileSync(lockPath, String(process.pid), { flag: 'wx' });
      return;
    } catch (e) {
      if (e.code !== 'EEXIST') throw e;
    }
    const holder = Number.parseInt(fs.readFileSync(lockPath, 'utf8').trim(), 10);
    if (!Number.isInteger(holder) || !alive(holder)) {
      log(`removing stale lock ${lockPath} (pid ${holder} gone)`);
      fs.rmSync(lockPath, { force: true });
      continue;
    }
    if (waited % 30 === 0) log(`waiting for pid ${holder}, which is building this chroot`);
    await sleep(2000);
  }
}

function run(cmd, args) {
  log(`$ ${cmd} ${args.join(' ')}`);
  const r = spawnSync(cmd, args, { stdio: ['ignore', 2, 2] });
  if (r.error) throw new Error(`${cmd}: ${r.error.message}`);
  if (r.status !== 0) throw new Error(`${cmd} failed (exit ${r.status ?? r.signal})`);
}

function have(cmd) {
  return spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;
}

/** The chroot's root for `release`, built first if it is not there yet. */
export async function ensureChroot(release) {
  const root = chrootRoot(release);
  if (isComplete(root)) return addMissing(root);
  if (process.getuid?.() !== 0) throw new Error(`building ${root} needs root (mmdebstrap in root mode)`);
  fs.mkdirSync(CACHE_DIR, { recursive: true });
  const lockPath = `${root}.lock`;
  await lock(lockPath);
  try {
    if (isComplete(root)) return root; // built by whoever held the lock (with every package)
    if (fs.existsSync(root)) throw new Error(`${root} exists but is incomplete (missing one of ${REQUIRED.join(', ')}); remove it to rebuild`);
    // Two releases' chroots are built at once in CI: the second apt-get waits for dpkg's lock instead
    // of failing on it.
    if (!have('mmdebstrap')) run('apt-get', ['install', '-y', '--no-install-recommends', '-o', 'DPkg::Lock::Timeout=600', 'mmdebstrap']);
    const tmp = `${root}.tmp`;
    fs.rmSync(tmp, { recursive: true, force: true }); // left by a failed or killed build
    const t0 = Date.now();
    const { suite } = RELEASES[release];
    run('mmdebstrap', [
      '--mode=root', '--format=directory', '--components=main',
      `--include=${PACKAGES.join(',')}`,
      // Mirrors that serve a snapshot of a moving suite (sid) carry a Release file past its
      // Valid-Until date; apt then refuses the whole suite. Signatures are still checked.
      '--aptopt=Acquire::Check-Valid-Until "false"',
      suite, tmp,
    ]);
    if (!isComplete(tmp)) throw new Error(`mmdebstrap finished but ${tmp} lacks some of ${REQUIRED.join(', ')}`);
    fs.renameSync(tmp, root);
    log(`built ${root} in ${((Date.now() - t0) / 1000).toFixed(0)} s`);
    return root;
  } finally {
    fs.rmSync(lockPath, { force: true });
  }
}

/** Installs ADDED packages a chroot built before them lacks (the same suite's versions). */
async function addMissing(root) {
  const missing = () => ADDED.filter((a) => !fs.existsSync(path.join(root, a.file)));
  if (missing().length === 0) return root;
  if (process.getuid?.() !== 0) throw new Error(`${root} lacks ${missing().map((a) => a.pkg).join(' ')}; installing it needs root`);
  const lockPath = `${root}.lock`;
  await lock(lockPath);
  try {
    const pkgs = missing().map((a) => a.pkg);
    if (pkgs.length === 0) return root;
    run('chroot', [root, 'apt-get', '-q', '-o', 'Acquire::Check-Valid-Until=false', 'update']);
    run('chroot', [root, 'apt-get', 'install', '-y', '-q', '--no-install-recommends', ...pkgs]);
    if (missing().length > 0) throw new Error(`installed ${pkgs.join(' ')} in ${root}, but ${missing().map((a) => a.file).join(', ')} is still missing`);
    return root;
  } finally {
    fs.rmSync(lockPath, { force: true });
  }
}

const isMain = process.argv[1] && path.resolve(process.argv[1]) === path.resolve(new URL(import.meta.url).pathname);
if (isMain) {
  const release = process.argv[2];
  if (!release || release === '-h' || release === '--help') {
    process.stderr.write(`usage: node scripts/release-chroot.mjs <${Object.keys(RELEASES).join('|')}>\n` +
      `  builds (once) and prints the root of the release's chroot under ${CACHE_DIR}\n`);
    process.exit(release ? 0 : 2);
  }
  ensureChroot(release).then((root) => process.stdout.write(root + '\n'), (e) => {
    log(e.message);
    process.exit(1);
  });
}
