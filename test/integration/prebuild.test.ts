// The packed package: `npm pack` ships prebuilds/linux-x64/*.node (made by prepack: prebuildify --napi --strip
// against Pacific's headers), and the tarball installs with `npm install --ignore-scripts` into a fresh project
// and works there — connect, image create/write/read, replicate between the suite's two clusters — loading
// the INSTALLED package (dist/ and the prebuild from the tarball, never this repo's lib/ or build/).
//
// The tarball is RBD_STREAM_PACKED when set (test/release/run.ts packs on the host, so a Reef/Tentacle run
// loads the Pacific-built binary with that release's librbd.so.1),
// else `npm pack` of this repo (runs prepack).
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { native } from '../../lib/binding/index.js';
import { A, B } from '../support/helpers.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const tmp = mkdtempSync(path.join(tmpdir(), 'rbd-stream-packed-'));
// npm from PATH: in a release chroot that is the chroot's npm, run by the chroot's node.
const npm = ['npm'];
// RBD_STREAM_NPM_CACHE (test/release/run.ts): npm's cache for the installs (not the release chroot's /root/.npm).
const cacheArgs = process.env.RBD_STREAM_NPM_CACHE ? ['--cache', process.env.RBD_STREAM_NPM_CACHE] : [];

function run(cmd: string, args: string[], cwd: string, env: NodeJS.ProcessEnv = process.env, timeoutMs = 300_000) {
  return new Promise<{ code: number | null; out: string; stdout: string }>((resolve, reject) => {
    const child = spawn(cmd, args, { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let stdout = '';
    child.stdout.on('data', (d) => { out += d; stdout += d; });
    child.stderr.on('data', (d) => (out += d));
    const t = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(t);
      resolve({ code, out, stdout });
    });
  });
}
const runNpm = (args: string[], cwd: string, env?: NodeJS.ProcessEnv) => run(npm[0], [...npm.slice(1), ...args], cwd, env);

/** A fresh consumer project with the tarball installed (npm's registry/cache for its dependencies). */
async function consumer(name: string, tarball: string, extraArgs: string[], env?: NodeJS.ProcessEnv): Promise<{ dir: string; out: string }> {
  const dir = path.join(tmp, name);
  const res0 = await run('mkdir', ['-p', dir], tmp);
  expect(res0.code).toBe(0);
  writeFileSync(path.join(dir, 'package.json'), JSON.stringify({ name: `consumer-${name}`, private: true, type: 'module' }));
  const res = await runNpm(['install', '--no-audit', '--no-fund', '--foreground-scripts', ...cacheArgs, ...extraArgs, tarball], dir, env);
  expect(res.code, res.out).toBe(0);
  return { dir, out: res.out };
}

// Runs in the consumer project with plain node: only `rbd-stream` from its node_modules.
const SMOKE = `
import { createRequire } from 'node:module';
import { readFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { Rados, replicate, librbdVersion } from 'rbd-stream';
const [a, b] = JSON.parse(process.argv[2]);
const name = 'packed-' + process.pid + '-' + Date.now().toString(36);
const ra = await Rados.connect({ conf: a.conf, keyring: a.keyring, user: a.user });
const rb = await Rados.connect({ conf: b.conf, keyring: b.keyring, user: b.user });
const pa = await ra.openPool(a.pool), pb = await rb.openPool(b.pool);
const data = randomBytes(256 << 10);
let same, replicated, zeros;
try {
  await pa.createImage(name, 16 << 20);
  const img = await pa.openImage(name);
  await img.write(data, 4 << 20);
  await img.flush();
  same = (await img.read(4 << 20, data.length)).equals(data);
  await img.createSnapshot('s1');
  const r = await replicate({ source: img, toSnapshot: 's1', target: { pool: pb, name, create: {} }, verify: true });
  await img.close();
  const copy = await pb.openImage(name, { snapshot: 's1' });
  replicated = { bytesWritten: r.bytesWritten, equal: (await copy.read(4 << 20, data.length)).equals(data) };
  zeros = (await copy.read(0, 4096)).every((x) => x === 0);
  await copy.close();
} finally {
  for (const p of [pa, pb]) {
    try { const i = await p.openImage(name); for (const s of await i.listSnapshots()) await i.removeSnapshot(s.name); await i.close(); } catch {}
    try { await p.removeImage(name); } catch {}
  }
  await pa.close(); await pb.close();
  await ra.close(); await rb.close();
}
const addons = Object.keys(createRequire(import.meta.url).cache).filter((k) => k.endsWith('.node'));
const maps = readFileSync('/proc/self/maps', 'utf8').split('\\n').map((l) => l.split(/\\s+/)[5]).filter(Boolean);
const lib = (re) => [...new Set(maps.filter((p) => re.test(p)))];
console.log(JSON.stringify({
  librbdVersion, node: process.version, addons, librbd: lib(/librbd\\.so/), xxhash: lib(/libxxhash/),
  entry: createRequire(import.meta.url).resolve('rbd-stream'), same, replicated, zeros,
}));
`;

describe('packed package (npm pack → npm install --ignore-scripts)', () => {
  let tarball: string;
  beforeAll(async () => {
    if (process.env.RBD_STREAM_PACKED) {
      tarball = path.resolve(process.env.RBD_STREAM_PACKED);
    } else {
      const res = await runNpm(['pack', '--json', '--pack-destination', tmp], root);
      expect(res.code, res.out).toBe(0);
      tarball = path.join(tmp, (JSON.parse(res.stdout.slice(res.stdout.indexOf('['))) as { filename: string }[])[0].filename);
    }
    expect(existsSync(tarball), tarball).toBe(true);
  }, 600_000);
  afterAll(() => rmSync(tmp, { recursive: true, force: true }));

  it('ships dist/, the prebuild and the from-source fallback; nothing from tools/, test/, benchmarks/, lib/, build/', async () => {
    const res = await run('tar', ['-tzf', tarball], tmp);
    expect(res.code, res.out).toBe(0);
    const files = res.stdout.trim().split('\n').map((f) => f.replace(/^package\//, ''));
    expect(files).toContain('dist/index.js');
    expect(files).toContain('dist/index.d.ts');
    expect(files).toContain('dist/cli/main.js');
    expect(files).toContain('binding.gyp');
    expect(files).toContain('native/addon.cc');
    expect(files.filter((f) => /^prebuilds\/linux-x64\/[^/]+\.node$/.test(f))).toHaveLength(1);
    expect(files.filter((f) => /^(tools|test|benchmarks|lib|build|docs|node_modules)\//.test(f))).toEqual([]);
  });

  it('installs with --ignore-scripts and works from the prebuild: connect, write/read, replicate a → b', async () => {
    expect(B, 'needs the suite\'s second cluster').toBeDefined();
    const { dir } = await consumer('ignore-scripts', tarball, ['--ignore-scripts']);
    const pkg = path.join(dir, 'node_modules', 'rbd-stream');
    expect(existsSync(path.join(pkg, 'build')), 'no build/: nothing was compiled').toBe(false);
    const prebuilt = readdirSync(path.join(pkg, 'prebuilds', `${process.platform}-${process.arch}`)).filter((f) => f.endsWith('.node'));
    expect(prebuilt).toHaveLength(1);
    writeFileSync(path.join(dir, 'smoke.mjs'), SMOKE);
    const clusters = [A, B!].map((c) => ({ conf: c.conf, keyring: c.keyring, user: c.user, pool: c.pool }));
    const env = { ...process.env };
    delete env.RBD_STREAM_ADDON; // the package's own loader, nothing pointed elsewhere
    delete env.NODE_OPTIONS; // no tsx or vitest hooks: the consumer's plain node
    const res = await run(process.execPath, ['smoke.mjs', JSON.stringify(clusters)], dir, env);
    expect(res.code, res.out).toBe(0);
    const info = JSON.parse(res.stdout.trim().split('\n').at(-1)!);
    console.log(`[packed] ${JSON.stringify(info)}`);
    expect(info.entry).toBe(path.join(pkg, 'dist', 'index.js'));
    expect(info.addons).toEqual([path.join(pkg, 'prebuilds', `${process.platform}-${process.arch}`, prebuilt[0])]);
    // The same librbd as this suite's own addon (in a release chroot: that release's librbd.so.1).
    expect(info.librbdVersion).toBe(native.librbdVersion);
    expect(info.librbd).toHaveLength(1);
    expect(info.xxhash).toEqual([]); // xxhash is compiled in: no runtime library besides librbd/librados
    expect(info.same).toBe(true);
    expect(info.replicated.equal).toBe(true);
    expect(info.replicated.bytesWritten).toBeGreaterThanOrEqual(256 << 10);
    expect(info.zeros).toBe(true);
  }, 300_000);

  it('with install scripts on, the install script finds the prebuild and compiles nothing (a broken compiler is never called)', async () => {
    const env = { ...process.env, CC: '/bin/false', CXX: '/bin/false', npm_config_nodedir: '/nonexistent' };
    // npm 11.19 runs (and warns about) dependency install scripts not covered by allowScripts; newer npm (Debian
    // sid's) blocks them. The consumer opts in here, so the script really runs (older npm ignores the flag).
    const { dir, out } = await consumer('with-scripts', tarball, ['--dangerously-allow-all-scripts'], env);
    expect(out, 'the install script ran (--foreground-scripts shows it)').toMatch(/rbd-stream@[^\n]* install\n(> |npm notice run )node-gyp-build/);
    const pkg = path.join(dir, 'node_modules', 'rbd-stream');
    expect(existsSync(path.join(pkg, 'build')), 'no build/: node-gyp never ran').toBe(false);
    const plain = { ...process.env };
    delete plain.RBD_STREAM_ADDON; // the package's own loader (test:release names its addon here)
    delete plain.NODE_OPTIONS;
    const res = await run(process.execPath, ['--input-type=module', '-e',
      "import { createRequire } from 'node:module'; import { librbdVersion } from 'rbd-stream';" +
      " console.log(librbdVersion, Object.keys(createRequire(import.meta.url).cache).filter((k) => k.endsWith('.node')).join(','))"], dir, plain);
    expect(res.code, res.out).toBe(0);
    const [version, loaded] = res.stdout.trim().split(' ');
    expect(version).toBe(native.librbdVersion);
    expect(loaded).toBe(path.join(pkg, 'prebuilds', `${process.platform}-${process.arch}`, 'rbd-stream.node'));
  }, 300_000);
});
