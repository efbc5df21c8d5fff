#!/usr/bin/env node
// Makes a fresh clone ready for `npm test` / `npm run demo`: Debian's Ceph
// packages, npm dependencies and the native addon, each only when missing
// or stale. Plain Node with no dependencies, since node_modules may not exist.
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ensureSystemDeps } from './deps.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const run = (cmd, args) => execFileSync(cmd, args, { cwd: root, stdio: 'inherit' });

await ensureSystemDeps();

// npm records what it installed in node_modules/.package-lock.json: reinstall
// when it is missing or older than the manifest or the lock file.
const installed = path.join(root, 'node_modules', '.package-lock.json');
const mtime = (f) => (existsSync(f) ? statSync(f).mtimeMs : 0);
const wanted = Math.max(mtime(path.join(root, 'package.json')), mtime(path.join(root, 'package-lock.json')));
if (!existsSync(installed) || mtime(installed) < wanted) {
  console.error('[ensure] installing npm dependencies');
  // --ignore-scripts: the addon is built below, once.
  run('npm', [existsSync(path.join(root, 'package-lock.json')) ? 'ci' : 'install', '--ignore-scripts', '--no-audit', '--no-fund']);
}

const addon = path.join(root, 'build', 'Release', 'rbd_stream.node');
const sources = [path.join(root, 'binding.gyp'), ...readdirSync(path.join(root, 'native'), { recursive: true }).map((f) => path.join(root, 'native', String(f)))];
const newest = Math.max(...sources.map((f) => statSync(f).mtimeMs));
if (!existsSync(addon) || statSync(addon).mtimeMs < newest) {
  console.error('[ensure] building the native addon');
  const args = [path.join(root, 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'), 'rebuild', '-j', '2'];
  // Build against the installed Node headers rather than downloading them.
  if (!process.env.npm_config_nodedir && existsSync('/usr/include/node/node_api.h')) args.push('--nodedir=/usr');
  run(process.execPath, args);
}
