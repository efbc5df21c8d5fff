// Least privilege and secrets: restricted cephx users work for what they may do, fail with
// EACCES/EPERM and a clear message otherwise, and keys never show up in output or on disk.
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Rados, isRbdError, replicate, syncImage } from '../../lib/index.js';
import { cephCli, getClusters, cephMajor, rbdCli, rbdExportMd5 } from '../support/clusters.js';

const { a } = getClusters();
const tag = `sec${process.pid}x${Date.now().toString(36)}`;
const SRC_IMG = `${tag}-src`;
const POOL2 = `${tag}-p2`;
const users = { ro: `${tag}-ro`, pool: `${tag}-pool`, none: `${tag}-none`, nomon: `${tag}-nomon` };
const keys: Record<keyof typeof users, string> = { ro: '', pool: '', none: '', nomon: '' };
/** A well-formed key that belongs to nobody. */
const WRONG_KEY = (() => {
  // cephx CryptoKey: le16 type (1 = AES), le32+le32 created, le16 length, 16 secret bytes.
  const b = Buffer.alloc(28);
  b.writeUInt16LE(1, 0);
  b.writeUInt32LE(Math.floor(Date.now() / 1000), 2);
  b.writeUInt16LE(16, 10);
  randomBytes(16).copy(b, 12);
  return b.toString('base64');
})();
const DATA = randomBytes(1 << 20);

const connectAs = (who: keyof typeof users) =>
  Rados.connect({ conf: a.conf, user: users[who], key: keys[who], timeoutMs: 5000 });

beforeAll(async () => {
  const caps: Record<keyof typeof users, string[]> = {
    ro: ['mon', 'profile rbd-read-only', 'osd', 'profile rbd-read-only'],
    pool: ['mon', 'profile rbd', 'osd', `profile rbd pool=${POOL2}`],
    none: ['mon', 'allow r'],
    nomon: [],
  };
  const monMajor = await cephMajor(a, 'mon');
  await cephCli(a, ['osd', 'pool', 'create', POOL2, '8']);
  await rbdCli(a, ['pool', 'init', POOL2]);
  for (const k of Object.keys(users) as (keyof typeof users)[]) {
    await cephCli(a, ['auth', 'get-or-create', `client.${users[k]}`, ...caps[k]]);
    keys[k] = (await cephCli(a, ['auth', 'get-key', `client.${users[k]}`])).trim();
    // Release difference: Tentacle's mon makes new keys AES-256 (type 2: base64 'Ag…', 32-byte
    // secret) where earlier releases make AES-128 (type 1: 'AQ…').
    expect(keys[k]).toMatch(monMajor >= 20 ? /^Ag[A-Za-z0-9+/=]{50,}$/ : /^AQ[A-Za-z0-9+/=]{30,}$/);
  }
  await rbdCli(a, ['--no-progress', 'import', '-', `${a.pool}/${SRC_IMG}`], { input: DATA });
  await rbdCli(a, ['snap', 'create', `${a.pool}/${SRC_IMG}@s1`]);
});

afterAll(async () => {
  for (const u of Object.values(users)) await cephCli(a, ['auth', 'rm', `client.${u}`]).catch(() => {});
  await rbdCli(a, ['snap', 'purge', '--no-progress', `${a.pool}/${SRC_IMG}`]).catch(() => {});
  await rbdCli(a, ['--no-progress', 'rm', `${a.pool}/${SRC_IMG}`]).catch(() => {});
  await cephCli(a, ['osd', 'pool', 'rm', POOL2, POOL2, '--yes-i-really-really-mean-it']).catch(() => {});
});

describe('least privilege', () => {
  it("a 'profile rbd-read-only' user can read images (inline key), not write or create", async () => {
    const r = await connectAs('ro');
    try {
      const p = await r.openPool(a.pool);
      const img = await p.openImage(SRC_IMG, { readOnly: true });
      expect((await img.read(0, DATA.length)).equals(DATA)).toBe(true);
      expect((await img.stat()).size).toBe(DATA.length);
      let diffed = 0;
      for await (const b of img.diff()) diffed += b.length;
      expect(diffed).toBeGreaterThan(0);
      await img.close();

      const err = await p.openImage(SRC_IMG).then((i) => i.write(Buffer.alloc(512), 0)).catch((e) => e);
      expect(isRbdError(err)).toBe(true);
      expect(['EPERM', 'EACCES']).toContain(err.code);
      expect(err.message).toContain(`${a.pool}/${SRC_IMG}`);
      const err2 = await p.createImage(`${tag}-x`, 1 << 20).catch((e) => e);
      expect(['EPERM', 'EACCES']).toContain(err2.code);
      expect(err2.message).toMatch(/create image/);
    } finally {
      await r.close();
    }
    // Unchanged.
    expect(await rbdExportMd5(a, `${a.pool}/${SRC_IMG}`)).toBe(md5(DATA));
  });

  it("a user limited to one pool ('profile rbd pool=…') can write there and nowhere else", async () => {
    const r = await connectAs('pool');
    try {
      const own = await r.openPool(POOL2);
      await own.createImage(`${tag}-t`, 1 << 20);
      const img = await own.openImage(`${tag}-t`);
      await img.write(DATA.subarray(0, 65536), 4096);
      await img.createSnapshot('s1');
      await img.close();
      expect(await rbdExportMd5(a, `${POOL2}/${tag}-t@s1`)).toBe(
        md5(Buffer.concat([Buffer.alloc(4096), DATA.subarray(0, 65536), Buffer.alloc((1 << 20) - 4096 - 65536)])),
      );
      await own.openImage(`${tag}-t`).then(async (i) => { await i.removeSnapshot('s1'); await i.close(); });
      await own.removeImage(`${tag}-t`);

      const other = await r.openPool(a.pool);
      const err = await other.createImage(`${tag}-x`, 1 << 20).catch((e) => e);
      expect(['EPERM', 'EACCES']).toContain(err.code);
      expect(err.message).toContain(`${a.pool}/${tag}-x`);
    } finally {
      await r.close();
    }
  });

  it('a user without OSD rights is refused with a message naming the operation: EPERM/EACCES up to Pacific, ETIMEDOUT from Reef', async () => {
    // Release difference (daemon side): Pacific's OSDs answer a client without OSD caps EPERM;
    // Reef's (18.2.7) and Tentacle's leave its requests unanswered, so it ends in the operation
    // timeout (connectAs: 5 s), and the timeout message names missing OSD caps among the causes.
    const major = await cephMajor(a, 'osd');
    const r = await connectAs('none');
    try {
      const p = await r.openPool(a.pool);
      const t0 = Date.now();
      const err = await p.openImage(SRC_IMG, { readOnly: true }).catch((e) => e);
      expect(isRbdError(err)).toBe(true);
      expect(err.errno).toBeLessThan(0);
      if (major >= 18) {
        expect(err.code).toBe('ETIMEDOUT');
        expect(Date.now() - t0).toBeLessThan(20_000);
        expect(err.message).toMatch(new RegExp(`open image '${a.pool}/${SRC_IMG}' failed: .*timed out.*a user without OSD caps`));
      } else {
        expect(['EPERM', 'EACCES']).toContain(err.code);
        expect(err.message).toMatch(new RegExp(`open image '${a.pool}/${SRC_IMG}'.*(not permitted|denied)`));
      }
    } finally {
      await r.close();
    }
    // No mon caps at all: refused at connect, naming the user.
    const e2 = await connectAs('nomon').catch((e) => e);
    expect(e2.code).toBe('EACCES');
    expect(e2.message).toContain(`client.${users.nomon}`);
  });

  it('a wrong key is refused with EACCES; the error names the user, not the key', async () => {
    const t0 = Date.now();
    const err = await Rados.connect({ conf: a.conf, user: users.ro, key: WRONG_KEY, timeoutMs: 5000 }).catch((e) => e);
    expect(Date.now() - t0).toBeLessThan(15_000);
    expect(err.code).toBe('EACCES');
    expect(err.message).toContain(`client.${users.ro}`);
    expect(JSON.stringify({ ...err, m: err.message, s: err.stack })).not.toContain(WRONG_KEY);
  });
});

describe('secrets', () => {
  it('inline keys never reach stdout/stderr, errors, open files, new files or the admin socket', async () => {
    const started = Date.now() - 1000;
    const child = resolve(import.meta.dirname, '..', 'support', 'fixtures', 'secrets-child.ts');
    const input = JSON.stringify({ conf: a.conf, user: users.ro, key: keys.ro, wrongKey: WRONG_KEY, pool: a.pool, image: SRC_IMG });
    const { out, err, code } = await runNode(child, input, 60_000);
    expect(code, err).toBe(0);
    const result = JSON.parse(/^RESULT (.*)$/m.exec(out)![1]) as { fds: number; leaks: string[]; sockets: string[] };
    // The child really did the failing operations and printed their errors.
    expect(out).toMatch(/wrong key error: .*EACCES/);
    expect(out).toMatch(/malformed key error: .*EINVAL/);
    expect(out).toMatch(/key via config error: .*EACCES/);
    expect(out).toMatch(/write \(read-only user\) error: .*EPERM/);
    expect(out).toMatch(/read: 16/);
    expect(result.fds).toBeGreaterThan(3);
    expect(result.leaks).toEqual([]);
    expect(result.sockets).toEqual([]); // no admin socket while an inline key is held
    for (const secret of [keys.ro, WRONG_KEY]) {
      expect(out).not.toContain(secret);
      expect(err).not.toContain(secret);
    }
    // Files created or modified meanwhile in the temp dir and the working directory
    // (except the cluster daemons' own stores, which hold every key by design).
    const daemonDir = dirname(a.conf);
    const changed = [...walk(tmpdir(), 4), ...walk(process.cwd(), 2)].filter(
      (f) => !f.startsWith(`${daemonDir}/`) && f.mtimeMs >= started,
    );
    const hits = changed.filter((f) => { try { return readFileSync(f.path).includes(keys.ro); } catch { return false; } });
    expect(hits.map((f) => f.path)).toEqual([]);
  });
});

function md5(b: Buffer): string {
  return createHash('md5').update(b).digest('hex');
}

function* walk(dir: string, depth: number): Generator<{ path: string; mtimeMs: number; startsWith(s: string): boolean }> {
  let names: string[];
  try { names = readdirSync(dir); } catch { return; }
  for (const n of names) {
    if (n === 'node_modules' || n === '.git') continue;
    const p = join(dir, n);
    let st;
    try { st = statSync(p); } catch { continue; }
    if (st.isDirectory()) { if (depth > 0) yield* walk(p, depth - 1); continue; }
    if (st.isFile() && st.size <= 8 << 20) yield { path: p, mtimeMs: st.mtimeMs, startsWith: (s) => p.startsWith(s) };
  }
}

function runNode(script: string, input: string, timeoutMs: number, args: string[] = []): Promise<{ out: string; err: string; code: number | null }> {
  return new Promise((res, rej) => {
    const ch = spawn(process.execPath, ['--import', 'tsx', script, ...args], { stdio: ['pipe', 'pipe', 'pipe'], cwd: process.cwd() });
    let out = '';
    let err = '';
    const timer = setTimeout(() => ch.kill('SIGKILL'), timeoutMs);
    ch.stdout.on('data', (d) => { out += d; });
    ch.stderr.on('data', (d) => { err += d; });
    ch.on('error', (e) => { clearTimeout(timer); rej(e); });
    ch.on('close', (code) => { clearTimeout(timer); res({ out, err, code }); });
    ch.stdin.end(input);
  });
}

describe('least privilege for replication', () => {
  it('replicates from a read-only source user to a one-pool target user; no key in events or results', async () => {
    const rs = await connectAs('ro');
    const rt = await connectAs('pool');
    const seen: unknown[] = [];
    try {
      const src = await (await rs.openPool(a.pool)).openImage(SRC_IMG, { readOnly: true });
      const pt = await rt.openPool(POOL2);
      const res = await replicate({
        source: src, toSnapshot: 's1', target: { pool: pt, name: `${tag}-rep`, create: {} }, verify: true,
        onProgress: (p) => seen.push(p),
      });
      seen.push(res);
      expect(res.bytesRead).toBe(DATA.length);
      // Into a pool the target user has no rights on: EPERM/EACCES, clear message.
      const err = await replicate({ source: src, toSnapshot: 's1', target: { pool: await rt.openPool(a.pool), name: `${tag}-no`, create: {} } })
        .catch((e) => e);
      expect(['EPERM', 'EACCES']).toContain(err.code);
      expect(err.message).toMatch(new RegExp(`'${a.pool}(/${tag}-no)?'`));
      seen.push({ message: err.message, stack: err.stack, ...err });
      // sync needs to snapshot the source: a read-only user is refused (EPERM), with a clear error.
      const err2 = await syncImage({ source: src, target: { pool: pt, name: `${tag}-sync` } }).catch((e) => e);
      expect(['EPERM', 'EACCES', 'EROFS']).toContain(err2.code);
      seen.push({ message: err2.message, stack: err2.stack, ...err2 });
      await src.close();
    } finally {
      await rs.close();
      await rt.close();
    }
    expect(await rbdExportMd5(a, `${POOL2}/${tag}-rep@s1`)).toBe(md5(DATA));
    expect(seen.length).toBeGreaterThan(2);
    const text = JSON.stringify(seen);
    for (const k of Object.values(keys)) expect(text).not.toContain(k);
    await rbdCli(a, ['snap', 'purge', '--no-progress', `${POOL2}/${tag}-rep`]);
    await rbdCli(a, ['rm', '--no-progress', `${POOL2}/${tag}-rep`]);
  });

  it('CLI: --json output and error reports carry no key (keyring files of restricted users)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'rbd-stream-sec-'));
    try {
      const kr = (who: keyof typeof users, key = keys[who]) => {
        const f = join(dir, `${who}.keyring`);
        writeFileSync(f, `[client.${users[who]}]\n\tkey = ${key}\n`, { mode: 0o600 });
        return f;
      };
      const cli = resolve(import.meta.dirname, '..', '..', 'lib', 'cli', 'main.ts');
      const run = (args: string[]) => runNode(cli, '', 60_000, args);
      const outputs: string[] = [];
      // export-diff as the read-only user: the stream on stdout, JSON summary on stderr.
      const ok = await run(['--json', 'export-diff', '-c', a.conf, '--id', users.ro, '--keyring', kr('ro'), `${a.pool}/${SRC_IMG}@s1`, '-']);
      expect(ok.code, ok.err).toBe(0);
      expect(ok.out.startsWith('rbd diff v1\n')).toBe(true);
      expect(JSON.parse(ok.err)).toBeTypeOf('object');
      outputs.push(ok.out, ok.err);
      // sync as the read-only user: refused (cannot snapshot), JSON error.
      const ro = await run(['--json', 'sync', '-c', a.conf, '--id', users.ro, '--keyring', kr('ro'),
        '--dest-id', users.pool, '--dest-keyring', kr('pool'), '--dest-conf', a.conf, `${a.pool}/${SRC_IMG}`, `${POOL2}/${tag}-cli`]);
      expect(ro.code).not.toBe(0);
      expect(JSON.parse(ro.out).error.code).toMatch(/^(EPERM|EACCES|EROFS)$/);
      outputs.push(ro.out, ro.err);
      // A wrong key in the keyring: EACCES naming the user, not the key.
      const bad = await run(['--json', 'sync', '-c', a.conf, '--id', users.ro, '--keyring', kr('ro', WRONG_KEY), `${a.pool}/${SRC_IMG}`]);
      expect(bad.code).toBe(1);
      const e = JSON.parse(bad.out).error;
      expect(e.code).toBe('EACCES');
      expect(e.message).toContain(`client.${users.ro}`);
      outputs.push(bad.out, bad.err);
      // Plain (non-JSON) error output too.
      const plain = await run(['sync', '-c', a.conf, '--id', users.ro, '--keyring', kr('ro', WRONG_KEY), `${a.pool}/${SRC_IMG}`]);
      expect(plain.err).toMatch(/EACCES/);
      outputs.push(plain.out, plain.err);
      for (const o of outputs) for (const k of [...Object.values(keys), WRONG_KEY]) expect(o).not.toContain(k);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
