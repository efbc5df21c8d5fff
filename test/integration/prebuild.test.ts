// `npm run prebuild` (prebuildify --napi --strip) output loads without build/.
import { spawn } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readdirSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { A } from '../support/helpers.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const tmp = mkdtempSync(path.join(tmpdir(), 'rbd-stream-prebuild-'));

function run(cmd: string, args: string[], cwd: string, env: NodeJS.ProcessEnv = process.env, timeoutMs = 240_000) {
  return new Promise<{ code: number | null; out: string }>((resolve, reject) => {
    const child = spawn(cmd, args, { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    const t = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(t);
      resolve({ code, out });
    });
  });
}

describe('prebuilds', () => {
  afterAll(() => rmSync(tmp, { recursive: true, force: true }));

  it('package.json: "prebuild" runs prebuildify --napi --strip', async () => {
    const pkg = (await import('../../package.json', { with: { type: 'json' } })).default as { scripts: Record<string, string> };
    expect(pkg.scripts.prebuild).toBe('prebuildify --napi --strip');
  });

  it('prebuildify builds a N-API prebuild; the package loads it (and works) with no build/ dir', async () => {
    // Build in a copy of the sources so the worktree's build/ stays untouched.
    const src = path.join(tmp, 'src');
    for (const f of ['binding.gyp', 'package.json', 'native']) cpSync(path.join(root, f), path.join(src, f), { recursive: true });
    symlinkSync(path.join(root, 'node_modules'), path.join(src, 'node_modules'), 'dir');
    const env = {
      ...process.env,
      // No internet: node-gyp must use the installed headers.
      npm_config_nodedir: process.env.npm_config_nodedir || '/usr',
      JOBS: '2',
    };
    const res = await run(process.execPath, [path.join(root, 'node_modules/prebuildify/bin.js'), '--napi', '--strip'], src, env);
    expect(res.code, res.out).toBe(0);
    const dir = path.join(src, 'prebuilds', `${process.platform}-${process.arch}`);
    const files = readdirSync(dir);
    expect(files.filter((f) => f.endsWith('.node')), files.join(', ')).toHaveLength(1);

    // The package without build/: package.json, lib/, node_modules, prebuilds/.
    const pkg = path.join(tmp, 'pkg');
    cpSync(path.join(root, 'package.json'), path.join(pkg, 'package.json'));
    cpSync(path.join(root, 'lib'), path.join(pkg, 'lib'), { recursive: true });
    cpSync(path.join(src, 'prebuilds'), path.join(pkg, 'prebuilds'), { recursive: true });
    symlinkSync(path.join(root, 'node_modules'), path.join(pkg, 'node_modules'), 'dir');
    expect(existsSync(path.join(pkg, 'build'))).toBe(false);
    const script = `
      import { createRequire } from 'node:module';
      const m = await import(${JSON.stringify(path.join(pkg, 'lib/index.ts'))});
      const loaded = Object.keys(createRequire(import.meta.url).cache).filter((k) => k.endsWith('.node'));
      const r = await m.Rados.connect({ conf: process.argv[1], keyring: process.argv[2] || undefined, user: process.argv[3] || undefined });
      console.log(JSON.stringify({ version: m.librbdVersion, loaded, fsid: await r.fsid() }));
      await r.close();
    `;
    // The package's own prebuild, not an addon the runner names (test:release sets RBD_STREAM_ADDON).
    const pkgEnv = { ...process.env };
    delete pkgEnv.RBD_STREAM_ADDON;
    const child = await run(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script, A.conf, A.keyring ?? '', A.user ?? ''], pkg, pkgEnv);
    expect(child.code, child.out).toBe(0);
    const info = JSON.parse(child.out.trim().split('\n').at(-1)!);
    expect(info.version).toMatch(/^\d+\.\d+\.\d+$/);
    expect(info.loaded).toHaveLength(1);
    expect(info.loaded[0].startsWith(path.join(pkg, 'prebuilds'))).toBe(true);
    expect(info.fsid).toMatch(/^[0-9a-f-]{36}$/);
  }, 300_000);
});
