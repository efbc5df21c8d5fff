#!/usr/bin/env node
// npm run build:prebuild (and prepack, so `npm pack` / `npm publish` always ship it):
// `prebuildify --napi --strip` → prebuilds/linux-x64/rbd-stream.node, the N-API binary node-gyp-build
// loads when the installed package has no build/ (so installs need no compiler or -dev packages).
//
// It is built in a temporary copy of binding.gyp + native/ so the worktree's build/ (which node-gyp
// rebuild would wipe) stays as it is, and replaces prebuilds/ entirely (nothing stale ships).
// It must be built against the OLDEST supported librbd headers (Pacific, librbd 1.16): librbd's C ABI
// only grows, so such a binary loads with Reef's and Tentacle's librbd.so.1 too, not the reverse.
// RBD_STREAM_PREBUILD_ANY_LIBRBD=1 skips that check. prebuilds/ is in .gitignore: never committed.
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const OLDEST = [1, 16]; // librbd.h LIBRBD_VER_MAJOR/MINOR of Ceph 16.2 Pacific
const log = (s) => process.stderr.write(`[prebuild] ${s}\n`);

const header = '/usr/include/rbd/librbd.h';
const h = existsSync(header) ? readFileSync(header, 'utf8') : '';
const ver = ['MAJOR', 'MINOR'].map((k) => Number(new RegExp(`#define LIBRBD_VER_${k} (\\d+)`).exec(h)?.[1]));
if (!(ver[0] === OLDEST[0] && ver[1] === OLDEST[1]) && process.env.RBD_STREAM_PREBUILD_ANY_LIBRBD !== '1') {
  log(`${header} is librbd ${ver.join('.')}, not ${OLDEST.join('.')} (Pacific, the oldest supported release): a binary`);
  log('built against newer headers may not load with older librbd. Build on Debian 12 (or set RBD_STREAM_PREBUILD_ANY_LIBRBD=1).');
  process.exit(1);
}

const tmp = mkdtempSync(path.join(tmpdir(), 'rbd-stream-prebuild-'));
try {
  for (const f of ['binding.gyp', 'package.json', 'native']) cpSync(path.join(root, f), path.join(tmp, f), { recursive: true });
  symlinkSync(path.join(root, 'node_modules'), path.join(tmp, 'node_modules'), 'dir');
  const env = { ...process.env, JOBS: process.env.JOBS || '2' };
  // Use the installed Node headers when there are any, rather than downloading them.
  if (!env.npm_config_nodedir && existsSync('/usr/include/node/node_api.h')) env.npm_config_nodedir = '/usr';
  const t0 = Date.now();
  const r = spawnSync(process.execPath, [path.join(root, 'node_modules/prebuildify/bin.js'), '--napi', '--strip'],
    { cwd: tmp, env, stdio: 'inherit' });
  if (r.status !== 0) throw new Error(`prebuildify failed (exit ${r.status ?? r.signal})`);
  rmSync(path.join(root, 'prebuilds'), { recursive: true, force: true });
  cpSync(path.join(tmp, 'prebuilds'), path.join(root, 'prebuilds'), { recursive: true });
  for (const d of readdirSync(path.join(root, 'prebuilds'))) {
    for (const f of readdirSync(path.join(root, 'prebuilds', d))) {
      log(`prebuilds/${d}/${f}: ${statSync(path.join(root, 'prebuilds', d, f)).size} bytes, librbd ${ver.join('.')} headers, ` +
        `${((Date.now() - t0) / 1000).toFixed(0)} s`);
    }
  }
} finally {
  rmSync(tmp, { recursive: true, force: true });
}
