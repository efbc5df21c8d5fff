/**
 * Where the installed Ceph keeps the plugins its daemons load at run time. The generated
 * ceph.conf names them as absolute paths, because some builds default to relative ones
 * (Debian trixie's Reef: `osd_class_dir = lib/x86_64-linux-gnu/rados-classes`), and an OSD
 * started in the cluster directory then cannot load cls_rbd: every image create fails EOPNOTSUPP.
 *
 * `root` is the filesystem the daemons run in ('/' on the host; a chroot's directory for other
 * releases): files are looked up under it, and the paths returned are as seen inside it.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';

export interface CephPaths {
  /** `osd class dir`: the object classes (libcls_rbd.so, …). */
  osdClassDir: string;
  /** `erasure code dir`: libec_*.so, loaded by mon and OSD. */
  erasureCodeDir: string;
  /** `plugin dir`: compressor/, crypto/ and erasure-code/ below it. */
  pluginDir: string;
  /** `mgr module path`: the mgr's Python modules (mgr_module.py, rbd_support/, …). */
  mgrModulePath: string;
}

/** Each path is the directory holding `file`; Debian packages name them in dpkg's database. */
const WANTED: { key: keyof CephPaths; file: string; subdir: string; under: 'lib' | 'share'; pkg: string }[] = [
  { key: 'osdClassDir', file: 'libcls_rbd.so', subdir: 'rados-classes', under: 'lib', pkg: 'ceph-osd / ceph-base' },
  { key: 'erasureCodeDir', file: 'libec_jerasure.so', subdir: 'ceph/erasure-code', under: 'lib', pkg: 'ceph-base' },
  { key: 'mgrModulePath', file: 'mgr_module.py', subdir: 'ceph/mgr', under: 'share', pkg: 'ceph-mgr' },
];

const MULTIARCH: Partial<Record<string, string>> = {
  x64: 'x86_64-linux-gnu', arm64: 'aarch64-linux-gnu', ppc64: 'powerpc64le-linux-gnu', s390x: 's390x-linux-gnu',
};

/** Install prefixes to try when dpkg does not know the file (not a Debian system, or built from source). */
function knownPrefixes(under: 'lib' | 'share'): string[] {
  if (under === 'share') return ['/usr/share', '/usr/local/share'];
  const ma = MULTIARCH[process.arch];
  return [...(ma ? [`/usr/lib/${ma}`] : []), '/usr/lib64', '/usr/lib', '/usr/local/lib'];
}

/** Paths (inside `root`) of installed files named exactly `names`, from dpkg's database. */
function dpkgFind(root: string, names: string[]): string[] {
  const r = spawnSync('dpkg-query', ['--admindir', join(root, 'var/lib/dpkg'), '-S', ...names.map((n) => `*/${n}`)], {
    encoding: 'utf8', timeout: 30_000,
  });
  // Exit status 1 only means some pattern matched nothing; the matches are still listed.
  if (r.error || typeof r.stdout !== 'string') return [];
  // Lines are `<package>[, <package>...]: <path>` (a package may carry an `:<arch>` suffix).
  return r.stdout.split('\n').flatMap((l) => {
    const i = l.indexOf(': /');
    return i >= 0 ? [l.slice(i + 2).trim()] : [];
  });
}

const cache = new Map<string, CephPaths>();

/** Finds the plugin directories of the Ceph installed in `root`; throws naming what is missing. */
export function findCephPaths(root = '/'): CephPaths {
  const hit = cache.get(root);
  if (hit) return hit;
  const listed = dpkgFind(root, WANTED.map((w) => w.file));
  const found: Partial<CephPaths> = {};
  const missing: string[] = [];
  for (const w of WANTED) {
    const candidates = [
      ...listed.filter((p) => p.endsWith(`/${w.file}`)).map((p) => dirname(p)),
      ...knownPrefixes(w.under).map((pre) => `${pre}/${w.subdir}`),
    ];
    const dir = candidates.find((d) => existsSync(join(root, d, w.file)));
    if (dir) found[w.key] = dir;
    else missing.push(`${w.file} (${w.pkg}) in none of: ${[...new Set(candidates)].join(', ')}`);
  }
  if (missing.length > 0) {
    throw new Error(`cannot find the installed Ceph's plugins${root === '/' ? '' : ` under ${root}`}:\n  ` +
      missing.join('\n  '));
  }
  // Ceph's own default: erasure code dir = <plugin dir>/erasure-code.
  const erasureCodeDir = found.erasureCodeDir!;
  const pluginDir = erasureCodeDir.endsWith('/erasure-code') ? dirname(erasureCodeDir) : erasureCodeDir;
  const paths: CephPaths = {
    osdClassDir: found.osdClassDir!, erasureCodeDir, pluginDir, mgrModulePath: found.mgrModulePath!,
  };
  cache.set(root, paths);
  return paths;
}
