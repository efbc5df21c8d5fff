// rbd-stream CLI end to end, as child processes: exit codes, --json shapes, piping with the real rbd CLI.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createInterface } from 'node:readline';
import { spawn } from 'node:child_process';
import { clusterArgs, getClusters, rbdCli, rbdExportMd5, type TestCluster } from '../support/clusters.js';
import { CLI_NODE_ARGS, ROOT, cliEnv, collectChild, runRbdStream, type CliRun } from '../support/cli-process.js';

const { a, b } = getClusters() as { a: TestCluster; b: TestCluster };
const tag = `cl${process.pid}`;
const made: [TestCluster, string][] = [];

const cli = (args: string[], input?: Buffer | string): Promise<CliRun> => runRbdStream(args, 90_000, input);

/** `left | right` through a real OS pipe; both exit codes. */
async function pipe(left: [string, string[]], right: [string, string[]]): Promise<[CliRun, CliRun]> {
  const l = spawn(left[0], left[1], { cwd: ROOT, env: cliEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
  const r = spawn(right[0], right[1], { cwd: ROOT, env: cliEnv(), stdio: ['pipe', 'pipe', 'pipe'] });
  r.stdin!.on('error', () => {});
  l.stdout!.pipe(r.stdin!);
  const lerr: Buffer[] = [];
  l.stderr!.on('data', (d: Buffer) => lerr.push(d));
  const lDone = new Promise<CliRun>((res, rej) => {
    l.on('error', rej);
    l.on('close', (code) => res({ code, stdout: '', stderr: Buffer.concat(lerr).toString() }));
  });
  return Promise.all([lDone, collectChild(r)]);
}

const src = (c: TestCluster) => clusterArgs(c);
const dst = (c: TestCluster) => {
  const args = ['--dest-conf', c.conf];
  if (c.user) args.push('--dest-id', c.user);
  if (c.keyring) args.push('--dest-keyring', c.keyring);
  return args;
};

async function rmImage(c: TestCluster, name: string) {
  await rbdCli(c, ['snap', 'purge', '--no-progress', `${c.pool}/${name}`]).catch(() => {});
  await rbdCli(c, ['rm', '--no-progress', `${c.pool}/${name}`]).catch(() => {});
}

async function makeImage(c: TestCluster, name: string, sizeMiB: number, writes: [number, number, number][]) {
  made.push([c, name]);
  await rbdCli(c, ['create', '--size', `${sizeMiB}M`, `${c.pool}/${name}`]);
  for (const [off, len, byte] of writes) {
    // rbd import-diff of a hand-made v1 stream: writes via the CLI only.
    const head = Buffer.alloc(17);
    head[0] = 0x77;
    head.writeBigUInt64LE(BigInt(off), 1);
    head.writeBigUInt64LE(BigInt(len), 9);
    const stream = Buffer.concat([Buffer.from('rbd diff v1\n'), head, Buffer.alloc(len, byte), Buffer.from('e')]);
    await rbdCli(c, ['import-diff', '--no-progress', '-', `${c.pool}/${name}`], { input: stream });
  }
}

const MiB = 1 << 20;
const SRC = `${tag}-src`;
beforeAll(async () => {
  await makeImage(a, SRC, 8, [[0, 1 << 20, 1], [3 << 20, 64 * 1024, 2]]);
  await rbdCli(a, ['snap', 'create', `${a.pool}/${SRC}@s1`]);
  await makeImage(a, `${tag}-tmp`, 1, []);
});

afterAll(async () => {
  for (const [c, n] of made) await rmImage(c, n);
});

describe('rbd-stream CLI', () => {
  it('usage: help is 0, unknown commands and bad specs are 2 (with a JSON error)', async () => {
    const h = await cli(['--help']);
    expect(h.code).toBe(0);
    expect(h.stdout).toMatch(/export-diff/);
    expect(h.stdout).toMatch(/Exit codes/);
    // Dev tooling (local clusters) is `npm run cluster`, not part of the shipped CLI.
    expect(h.stdout).not.toMatch(/^  cluster /m);
    expect((await cli(['frobnicate'])).code).toBe(2);
    const bad = await cli(['--json', 'export-diff', ...src(a), `${a.pool}/${SRC}`, '-']);
    expect(bad.code).toBe(2);
    expect(JSON.parse(bad.stderr)).toEqual({ error: { code: 'ERR_USAGE', message: expect.stringMatching(/snapshot/) } });
    expect((await cli(['sync', ...src(a), 'a/b/c/d'])).code).toBe(2);
    const rate = await cli(['--json', 'sync', ...src(a), '--bwlimit', 'fast', `${a.pool}/${SRC}`]);
    expect(rate.code).toBe(2);
    expect(JSON.parse(rate.stderr).error.message).toMatch(/bytes per second/);
    const size = await cli(['--json', 'sync', ...src(a), '--inflight', '48MB/s', `${a.pool}/${SRC}`]);
    expect(size.code).toBe(2);
    expect(JSON.parse(size.stderr).error.message).toMatch(/size in bytes/);
  });

  it('export-diff - | rbd import-diff - and rbd export-diff - | import-diff - (real pipes)', async () => {
    const t1 = `${tag}-p1`;
    const t2 = `${tag}-p2`;
    await makeImage(b, t1, 1, []);
    await makeImage(b, t2, 1, []);
    const [l1, r1] = await pipe(
      [process.execPath, [...CLI_NODE_ARGS, 'export-diff', ...src(a), `${a.pool}/${SRC}@s1`, '-']],
      ['rbd', [...clusterArgs(b), '--no-progress', 'import-diff', '-', `${b.pool}/${t1}`]],
    );
    expect([l1.code, r1.code], l1.stderr + r1.stderr).toEqual([0, 0]);
    const [l2, r2] = await pipe(
      ['rbd', [...clusterArgs(a), '--no-progress', 'export-diff', `${a.pool}/${SRC}@s1`, '-']],
      [process.execPath, [...CLI_NODE_ARGS, '--json', 'import-diff', ...src(b), '-', `${b.pool}/${t2}`]],
    );
    expect([l2.code, r2.code], l2.stderr + r2.stderr).toEqual([0, 0]);
    const j = JSON.parse(r2.stdout);
    expect(j).toMatchObject({ version: 1, toSnapshot: 's1', size: 8 << 20, resized: true, dataExtents: expect.any(Number) });
    expect(j.bytesWritten + j.bytesZeroed).toBeGreaterThan(0);
    const want = await rbdExportMd5(a, `${a.pool}/${SRC}@s1`);
    expect(await rbdExportMd5(b, `${b.pool}/${t1}@s1`)).toBe(want);
    expect(await rbdExportMd5(b, `${b.pool}/${t2}@s1`)).toBe(want);
  });

  it('export-diff --json to stdout puts the summary on stderr; inspect reads stdin', async () => {
    const [l, r] = await pipe(
      [process.execPath, [...CLI_NODE_ARGS, '--json', 'export-diff', '--export-format', '2', ...src(a), `${a.pool}/${SRC}@s1`, '-']],
      [process.execPath, [...CLI_NODE_ARGS, '--json', 'inspect', '-']],
    );
    expect([l.code, r.code]).toEqual([0, 0]);
    const summary = JSON.parse(l.stderr);
    const ins = JSON.parse(r.stdout);
    expect(summary).toMatchObject({ image: `${a.pool}/${SRC}`, snapshot: 's1', format: 2, size: 8 << 20 });
    expect(ins).toMatchObject({ version: 2, toSnapshot: 's1', protected: false, size: 8 << 20, streamBytes: summary.streamBytes });
    expect(ins.dataBytes + ins.zeroBytes).toBe(summary.dataBytes + summary.zeroBytes);
  });

  it('corrupt stdin: exit 5 with an ERR_DIFF_* code, and no snapshot made', async () => {
    const t = `${tag}-tmp`;
    const good = await rbdCli(a, ['export-diff', '--no-progress', `${a.pool}/${SRC}@s1`, '-'], { buffer: true });
    const r = await cli(['--json', 'import-diff', ...src(a), '-', `${a.pool}/${t}`], good.subarray(0, good.length - 10));
    expect(r.code).toBe(5);
    expect(JSON.parse(r.stdout).error.code).toBe('ERR_DIFF_TRUNCATED');
    expect(JSON.parse(await rbdCli(a, ['snap', 'ls', '--format', 'json', `${a.pool}/${t}`]))).toEqual([]);
    const banner = await cli(['import-diff', ...src(a), '-', `${a.pool}/${t}`], 'not a diff at all');
    expect(banner.code).toBe(5);
    expect(banner.stderr).toMatch(/ERR_DIFF_BANNER/);
  });

  it('diff prints what `rbd diff` prints (plain and json)', async () => {
    for (const fmt of [[], ['--format', 'json']]) {
      const ours = await cli(['diff', ...src(a), ...fmt, `${a.pool}/${SRC}@s1`]);
      expect(ours.code).toBe(0);
      expect(ours.stdout).toBe(await rbdCli(a, ['diff', ...fmt, `${a.pool}/${SRC}@s1`]));
    }
  });

  it('sync: full then incremental across clusters (--json), refusal is exit 4', async () => {
    const args = ['--json', 'sync', ...src(a), ...dst(b), '--keep-source', '2', '--keep-target', '2', `${a.pool}/${SRC}`];
    made.push([b, SRC]);
    const r1 = await cli(args);
    expect(r1.code, r1.stderr).toBe(0);
    const j1 = JSON.parse(r1.stdout);
    expect(j1).toMatchObject({
      image: `${a.pool}/${SRC}`, target: `${b.pool}/${SRC}`, mode: 'full', snapshot: expect.stringMatching(/^rbd-sync-\d{8}T\d{6}\.\d{3}Z$/),
      resumed: false, bytesWritten: expect.any(Number), seconds: expect.any(Number), pruned: { source: [], target: [] },
    });
    await rbdCli(a, ['bench', '--io-type', 'write', '--io-size', '4096', '--io-total', '65536', '--io-pattern', 'rand', `${a.pool}/${SRC}`]);
    const r2 = await cli([...args.slice(0, -1), '--verify', '--bwlimit', '64M', '--inflight', '2M', `${a.pool}/${SRC}`]);
    expect(r2.code, r2.stderr).toBe(0);
    const j2 = JSON.parse(r2.stdout);
    expect(j2).toMatchObject({ mode: 'incremental', base: j1.snapshot, verified: true });
    expect(j2.peakInflightBytes).toBeGreaterThan(0);
    expect(j2.peakInflightBytes).toBeLessThanOrEqual(2 << 20);
    expect(await rbdExportMd5(b, `${b.pool}/${SRC}@${j2.snapshot}`)).toBe(await rbdExportMd5(a, `${a.pool}/${SRC}@${j2.snapshot}`));
    // A different prefix shares nothing with the target: refused.
    const r3 = await cli([...args.slice(0, -1), '--prefix', 'other-', `${a.pool}/${SRC}`]);
    expect(r3.code).toBe(4);
    expect(JSON.parse(r3.stdout).error.code).toBe('ERR_NO_COMMON_SNAPSHOT');
  });

  it('sync prunes to retention policies on both sides (--keep-source latest2, --keep-target latest1,hours1)', async () => {
    // Rounds made seconds apart share their hour (and day, ...), so hours1 keeps one snapshot there:
    // deterministic here; spread-out times are covered by test/unit/retention.test.ts.
    const name = `${tag}-ret`;
    await makeImage(a, name, 4, [[0, 65536, 7]]);
    made.push([b, name]);
    const args = ['--json', 'sync', ...src(a), ...dst(b), '--keep-source', 'latest2', '--keep-target', 'latest1,hours1', `${a.pool}/${name}`];
    const made4: string[] = [];
    for (let i = 0; i < 4; i++) {
      const r = await cli(args);
      expect(r.code, r.stderr).toBe(0);
      made4.push(JSON.parse(r.stdout).snapshot);
    }
    const snaps = async (c: TestCluster) =>
      (JSON.parse(await rbdCli(c, ['snap', 'ls', '--format', 'json', `${c.pool}/${name}`])) as { name: string }[])
        .map((s) => s.name).sort();
    expect(await snaps(a)).toEqual(made4.slice(-2).sort());
    expect(await snaps(b)).toEqual(made4.slice(-1));
    const bad = await cli(['--json', 'sync', ...src(a), ...dst(b), '--keep-target', 'days7,bogus3', `${a.pool}/${name}`]);
    expect(bad.code).toBe(2);
    expect(bad.stdout + bad.stderr).toContain('bogus3');
  });

  it('SIGINT interrupts a sync with exit 130; the next run resumes the same snapshot', async () => {
    const name = `${tag}-int`;
    made.push([b, name]);
    // Data of our own, never all zeros (rbd bench fills its buffer with one random byte, zero one
    // run in 256, and a round copying only zeros writes nothing: sync.test.ts covers that case).
    await makeImage(a, name, 256, [0, 1, 2, 3].map((i): [number, number, number] => [i * 64 * MiB, 64 * MiB, 0x31 + i]));
    const args = ['--json', 'sync', ...src(a), ...dst(b), `${a.pool}/${name}`];
    // One chunk in flight: the copy takes long enough (~1 s) to be interrupted in the middle.
    const child = spawn(process.execPath, [...CLI_NODE_ARGS, '--progress-json', ...args, '--concurrency', '1'], { cwd: ROOT, env: cliEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
    const done = collectChild(child);
    // Interrupt at the first progress line that shows the copy under way and far from done.
    let interruptedAt: { bytesDone: number; bytesTotal: number } | undefined;
    const lines = createInterface({ input: child.stderr! });
    lines.on('line', (line) => {
      if (interruptedAt || !line.startsWith('{"progress"')) return;
      const p = JSON.parse(line).progress as { bytesDone: number; bytesTotal: number; image: string };
      expect(p.image).toBe(name);
      if (p.bytesDone > 0 && p.bytesDone < p.bytesTotal / 2) {
        interruptedAt = p;
        child.kill('SIGINT');
      }
    });
    const r1 = await done;
    expect(interruptedAt, `no progress line showed the copy under way: ${r1.stderr}`).toBeDefined();
    expect(r1.code, r1.stderr).toBe(130);
    expect(JSON.parse(r1.stdout).error.code).toBe('ABORT_ERR');
    const srcSnaps = JSON.parse(await rbdCli(a, ['snap', 'ls', '--format', 'json', `${a.pool}/${name}`])) as { name: string }[];
    expect(srcSnaps).toHaveLength(1);
    expect(JSON.parse(await rbdCli(b, ['snap', 'ls', '--format', 'json', `${b.pool}/${name}`]))).toEqual([]);
    const r2 = await cli(args);
    expect(r2.code, `${r2.stdout}${r2.stderr}`).toBe(0); // --json: the error is on stdout
    const j2 = JSON.parse(r2.stdout);
    expect(j2).toMatchObject({ mode: 'full', snapshot: srcSnaps[0].name });
    expect(await rbdExportMd5(b, `${b.pool}/${name}@${j2.snapshot}`)).toBe(await rbdExportMd5(a, `${a.pool}/${name}@${j2.snapshot}`));
  });

  it('sync-pool: one broken image is exit 3 with one result per image', async () => {
    const names = [1, 2, 3].map((i) => `${tag}-pool-${i}`);
    for (const n of names) {
      await makeImage(a, n, 2, [[0, 4096, 7]]);
      made.push([b, n]);
    }
    await makeImage(b, names[1], 2, []); // unrelated target: refused
    const r = await cli(['--json', 'sync-pool', ...src(a), ...dst(b), '--images', `${tag}-pool-*`, '--parallel', '2', a.pool, b.pool]);
    expect(r.code, r.stderr).toBe(3);
    const j = JSON.parse(r.stdout);
    expect(j.summary).toMatchObject({ total: 3, ok: 2, failed: 1 });
    expect(j.images.map((x: { name: string; ok: boolean }) => [x.name, x.ok])).toEqual([[names[0], true], [names[1], false], [names[2], true]]);
    expect(j.images[1].error.code).toBe('ERR_NO_COMMON_SNAPSHOT');
    const plain = await cli(['sync-pool', ...src(a), ...dst(b), '--images', `${names[0]},${names[2]}`, a.pool, b.pool]);
    expect(plain.code).toBe(0);
    expect(plain.stdout).toMatch(/2\/2 images synced, 0 failed/);
  });

  it('mirror status reports through --json', async () => {
    const m = await cli(['--json', 'mirror', 'status', ...src(a), a.pool]);
    expect(m.code, m.stderr + m.stdout).toBe(0);
    const ms = JSON.parse(m.stdout);
    expect(ms).toMatchObject({ pool: a.pool, health: expect.stringMatching(/^(OK|WARNING|ERROR|UNKNOWN)$/), total: expect.any(Number), states: expect.any(Object) });
    expect(ms.mode).toBe(JSON.parse(await rbdCli(a, ['mirror', 'pool', 'info', '--format', 'json', a.pool])).mode);
  });
});
