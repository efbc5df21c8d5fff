#!/usr/bin/env node
// npm run test:asan [-- <test files>]: builds the addon with AddressSanitizer into build-asan/
// (the normal build/ is untouched) and runs test files against it with libasan preloaded.
// Default files: test/integration/bad-input.test.ts and test/integration/security.test.ts (every entry point, closed
// handles, errors, child processes). Node itself is not instrumented, so leak detection is off
// (Node never frees some allocations by design); heap overflows, use-after-free and
// double frees in the addon abort the run with an ASan report.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const dir = join(root, 'build-asan');
mkdirSync(dir, { recursive: true });

// Same target as binding.gyp, sources taken from ../native, plus the sanitizer flags.
const gyp = JSON.parse(readFileSync(join(root, 'binding.gyp'), 'utf8'));
const t = gyp.targets[0];
t.sources = t.sources.map((s) => join('..', s));
t.include_dirs = t.include_dirs.map((d) => (d.startsWith('<') ? d : join('..', d)));
t.cflags_cc = [...t.cflags_cc.filter((f) => !/^-O/.test(f)), '-O1', '-g', '-fsanitize=address', '-fno-omit-frame-pointer'];
t.ldflags = [...(t.ldflags ?? []), '-fsanitize=address'];
writeFileSync(join(dir, 'binding.gyp'), JSON.stringify(gyp, null, 2));
writeFileSync(join(dir, 'package.json'), '{"name":"rbd-stream-asan","private":true}\n');

const nodeGyp = join(root, 'node_modules', '.bin', 'node-gyp');
const build = spawnSync(nodeGyp, ['rebuild', '-j', '2'], { cwd: dir, stdio: 'inherit' });
if (build.status !== 0) process.exit(build.status ?? 1);

const libasan = execFileSync('gcc', ['-print-file-name=libasan.so'], { encoding: 'utf8' }).trim();
const files = process.argv.slice(2);
const env = {
  ...process.env,
  LD_PRELOAD: [libasan, process.env.LD_PRELOAD].filter(Boolean).join(':'),
  ASAN_OPTIONS: process.env.ASAN_OPTIONS ?? 'detect_leaks=0:abort_on_error=1:halt_on_error=1',
  RBD_STREAM_ADDON: join(dir, 'build', 'Release', 'rbd_stream.node'),
};
const vitest = join(root, 'node_modules', '.bin', 'vitest');
const run = spawnSync(vitest, ['run', ...(files.length ? files : ['test/integration/bad-input.test.ts', 'test/integration/security.test.ts'])], {
  cwd: root, stdio: 'inherit', env,
});
process.exit(run.status ?? 1);
