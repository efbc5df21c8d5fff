#!/usr/bin/env node
// Checks (and, as root, installs) the system dependencies of rbd-stream:
// librbd/librados/xxhash headers and the Ceph daemons/CLIs used by the test clusters.
// Plain Node ESM, no npm dependencies. Fast path (everything present) does no I/O beyond stat().
import { accessSync, constants, statSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export const HEADERS = [
  '/usr/include/rbd/librbd.h',
  '/usr/include/rados/librados.h',
  '/usr/include/rados/librados.hpp',
  '/usr/include/xxhash.h',
];

export const BINARIES = [
  'ceph-mon', 'ceph-osd', 'ceph-mgr', 'ceph', 'rbd', 'rbd-mirror', 'monmaptool', 'ceph-authtool',
];

export const APT_PACKAGES = [
  'librbd-dev', 'librados-dev', 'libradospp-dev', 'libxxhash-dev',
  'ceph-mon', 'ceph-osd', 'ceph-mgr', 'ceph-common', 'rbd-mirror',
];

const APT_CMD = `apt-get install -y --no-install-recommends ${APT_PACKAGES.join(' ')}`;

function isFile(p) {
  try { return statSync(p).isFile(); } catch { return false; }
}

function searchDirs() {
  const dirs = (process.env.PATH ?? '').split(delimiter).filter(Boolean);
  for (const d of ['/usr/local/sbin', '/usr/local/bin', '/usr/sbin', '/usr/bin', '/sbin', '/bin']) {
    if (!dirs.includes(d)) dirs.push(d);
  }
  return dirs;
}

/** Absolute path of an executable, or null. */
export function which(name, dirs = searchDirs()) {
  for (const d of dirs) {
    const p = join(d, name);
    try {
      if (statSync(p).isFile()) { accessSync(p, constants.X_OK); return p; }
    } catch { /* next */ }
  }
  return null;
}

/** Lists what is missing: header paths and binary names. */
export function missingSystemDeps() {
  const dirs = searchDirs();
  return [
    ...HEADERS.filter((h) => !isFile(h)),
    ...BINARIES.filter((b) => which(b, dirs) === null),
  ];
}

function run(cmd, args) {
  console.error(`[deps] $ ${cmd} ${args.join(' ')}`);
  const r = spawnSync(cmd, args, {
    stdio: 'inherit',
    env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
  });
  if (r.error) throw r.error;
  if (r.status !== 0) throw new Error(`${cmd} ${args[0]} failed with exit code ${r.status ?? r.signal}`);
}

/**
 * Ensures the system dependencies exist. Returns normally when all are present
 * (installing them via apt-get first when running as root); throws otherwise.
 * @param {{ install?: boolean, quiet?: boolean }} [opts]
 * @returns {{ installed: boolean }}
 */
export function ensureSystemDeps(opts = {}) {
  let missing = missingSystemDeps();
  if (missing.length === 0) return { installed: false };

  const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
  const install = opts.install ?? true;
  if (!isRoot || !install || which('apt-get') === null) {
    const err = new Error(
      `rbd-stream: missing system dependencies:\n  ${missing.join('\n  ')}\n` +
      `Install them (Debian/Ubuntu) with:\n  sudo apt-get update && sudo ${APT_CMD}\n`,
    );
    err.missing = missing;
    throw err;
  }

  if (!opts.quiet) console.error(`[deps] missing: ${missing.join(', ')} — installing with apt-get`);
  run('apt-get', ['update']);
  run('apt-get', ['install', '-y', '--no-install-recommends', ...APT_PACKAGES]);
  missing = missingSystemDeps();
  if (missing.length > 0) {
    const err = new Error(`rbd-stream: still missing after apt-get install:\n  ${missing.join('\n  ')}`);
    err.missing = missing;
    throw err;
  }
  return { installed: true };
}

const isMain = process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1];
if (isMain) {
  try {
    const { installed } = ensureSystemDeps();
    if (installed) console.error('[deps] system dependencies installed');
    process.exit(0);
  } catch (e) {
    console.error(e instanceof Error ? e.message : String(e));
    process.exit(1);
  }
}
