// replicate() and syncImage() into a "far" target: cluster b seen through a conf that delays every
// OSD reply the client receives by U(0, 20 ms) (mean 10 ms; test/support/delay.ts). Correctness
// only — nothing here is timed except the check that the injection is in effect. The rbd CLI on the
// undelayed confs is the oracle (`rbd export pool/img@snap - | md5`).
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Rados, replicate, syncImage, type Image, type Pool, type ReplicateProgress } from '../../lib/index.js';
import { rbdExportMd5, type TestCluster } from '../support/clusters.js';
import { A, B as maybeB, Images, KiB, MiB, connectTo, expectCode } from '../support/helpers.js';
import { writeDelayedConf } from '../support/delay.js';
import { withReplicateTestHooks } from '../../lib/transfer/replicate/options.js';

const B: TestCluster = maybeB ?? A;
const MEAN_MS = 10;

let ra: Rados;
let rfar: Rados;
let pa: Pool;
let pfar: Pool;
let farDir: string | undefined;
const imagesA = new Images(A);
const imagesB = new Images(B);

const md5 = (c: TestCluster, spec: string) => rbdExportMd5(c, `${c.pool}/${spec}`);

/** Scattered changes: random data, zeros written as data, write_zeroes and discard over earlier data. */
async function scatter(img: Image, size: number, round: number): Promise<void> {
  const n = 24;
  for (let i = 0; i < n; i++) {
    const off = ((i * 7919 + round * 104729) % (size / (64 * KiB))) * 64 * KiB + (i % 3) * 4 * KiB;
    const len = [4 * KiB, 60 * KiB, 1 * MiB + 12 * KiB][i % 3];
    if (off + len > size) continue;
    await img.write(randomBytes(len), off);
  }
  // Zeroed ranges, partly over data just written (offsets overlap the writes above).
  await img.writeZeroes(((round * 13) % 40) * MiB + 4 * KiB, 2 * MiB);
  await img.discard(((round * 17 + 5) % 40) * MiB, 4 * MiB);
  await img.write(Buffer.alloc(128 * KiB), ((round * 19 + 9) % 40) * MiB + 8 * KiB);
}

beforeAll(async () => {
  ra = await connectTo(A);
  pa = await ra.openPool(A.pool);
  farDir = mkdtempSync(join(tmpdir(), 'rbd-stream-remote-'));
  const farConf = writeDelayedConf(B, MEAN_MS, farDir);
  rfar = await Rados.connect({ conf: farConf, keyring: B.keyring, user: B.user });
  pfar = await rfar.openPool(B.pool);
});

afterAll(async () => {
  await rfar?.close();
  await ra?.close();
  await imagesA.purge();
  await imagesB.purge();
  if (farDir) rmSync(farDir, { recursive: true, force: true });
}, 180_000);

describe('replicate to a delayed target (mean 10 ms per OSD reply)', () => {
  it('the injection is in effect: 20 sequential 4 KiB reads take more than 20 × 2 ms', async () => {
    const name = imagesB.name('rm-probe');
    await pfar.createImage(name, 8 * MiB);
    const img = await pfar.openImage(name);
    try {
      await img.write(randomBytes(4 * MiB), 0); // objects that exist: reads go to the OSD
      await img.flush();
      const t0 = performance.now();
      // Scattered, descending offsets: no readahead, no cache hit.
      for (let i = 19; i >= 0; i--) await img.read(((i * 37) % 64) * 64 * KiB, 4 * KiB);
      const ms = performance.now() - t0;
      console.log(`20 sequential 4 KiB reads through the delayed conf: ${ms.toFixed(1)} ms`);
      expect(ms, `20 reads took ${ms.toFixed(1)} ms`).toBeGreaterThan(20 * 2);
    } finally {
      await img.close();
    }
  });

  it('full, then incremental (scattered writes, zeroed ranges): target snapshots match the source', async () => {
    const SIZE = 64 * MiB;
    const srcName = await imagesA.create(pa, 'rm-src', SIZE);
    const dst = imagesB.name('rm-dst');
    const src = await pa.openImage(srcName);
    try {
      await scatter(src, SIZE, 0);
      await src.createSnapshot('s1');
      const r1 = await replicate({ source: src, toSnapshot: 's1', target: { pool: pfar, name: dst, create: {} } });
      expect(r1.resumed).toBe(false);
      expect(r1.bytesWritten).toBeGreaterThan(0);

      await scatter(src, SIZE, 1);
      await src.createSnapshot('s2');
      const r2 = await replicate({ source: src, fromSnapshot: 's1', toSnapshot: 's2', target: { pool: pfar, name: dst } });
      expect(r2.bytesRead).toBeLessThan(SIZE);

      for (const s of ['s1', 's2']) expect(await md5(B, `${dst}@${s}`), s).toBe(await md5(A, `${srcName}@${s}`));
      expect(await md5(B, dst)).toBe(await md5(A, `${srcName}@s2`));
    } finally {
      await src.close();
    }
  }, 180_000);

  it('syncImage: two rounds (full, incremental) match the source', async () => {
    const SIZE = 64 * MiB;
    const name = await imagesA.create(pa, 'rm-sync', SIZE);
    imagesB.names.push(name); // the target takes the source's name
    const src = await pa.openImage(name);
    try {
      for (let round = 0; round < 2; round++) {
        await scatter(src, SIZE, 10 + round);
        const r = await syncImage({ source: src, target: { pool: pfar } });
        expect(r.mode).toBe(round === 0 ? 'full' : 'incremental');
        expect(await md5(B, `${name}@${r.snapshot}`), `round ${round}`).toBe(await md5(A, `${name}@${r.snapshot}`));
      }
    } finally {
      await src.close();
    }
  }, 180_000);

  it('an abort mid-copy rejects with ABORT_ERR; a re-run resumes and matches', async () => {
    const SIZE = 256 * MiB;
    const srcName = await imagesA.create(pa, 'rm-abort-src', SIZE);
    const dst = imagesB.name('rm-abort-dst');
    const src = await pa.openImage(srcName);
    try {
      for (let off = 0; off < SIZE; off += 4 * MiB) await src.write(randomBytes(4 * MiB), off);
      await src.createSnapshot('base');
      const ac = new AbortController();
      const seen: ReplicateProgress[] = [];
      // Few small ops in flight: the copy lasts seconds over the delay, so the abort lands mid-copy.
      const e = await expectCode(
        replicate({
          source: src, toSnapshot: 'base', target: { pool: pfar, name: dst, create: {} }, signal: ac.signal,
          concurrency: 4, chunkSize: 256 * KiB,
          onProgress: (p) => {
            seen.push(p);
            if (p.bytesDone > 0 && !ac.signal.aborted) ac.abort();
          },
        }),
        'ABORT_ERR',
      );
      expect(e.name).toBe('AbortError');
      expect(seen.length).toBeGreaterThan(0);

      const t = await pfar.openImage(dst);
      try {
        expect(await t.getSnapshot('base')).toBeUndefined();
        const cp = JSON.parse((await t.getMetadata('rbd-stream.checkpoint'))!) as { doneOffset: number };
        expect(cp.doneOffset).toBeGreaterThan(0);
        expect(cp.doneOffset).toBeLessThan(SIZE);
      } finally {
        await t.close();
      }

      const r = await replicate({ source: src, toSnapshot: 'base', target: { pool: pfar, name: dst } });
      expect(r.resumed).toBe(true);
      expect(r.bytesRead).toBeLessThan(SIZE);
      expect(await md5(B, `${dst}@base`)).toBe(await md5(A, `${srcName}@base`));
    } finally {
      await src.close();
    }
  }, 300_000);
  it('checkpoints run beside the copy (every 20 ms): each recorded one covers data already on the target; a re-run after an abort resumes and matches', async () => {
    const SIZE = 32 * MiB;
    const srcName = await imagesA.create(pa, 'rm-ck-src', SIZE);
    const dst = imagesB.name('rm-ck-dst');
    const src = await pa.openImage(srcName);
    // The target read through an undelayed connection while the copy runs.
    const rnear = await connectTo(B);
    const pnear = await rnear.openPool(B.pool);
    const data = randomBytes(SIZE);
    try {
      for (let off = 0; off < SIZE; off += 4 * MiB) await src.write(data.subarray(off, off + 4 * MiB), off);
      await src.createSnapshot('base');
      const ac = new AbortController();
      const recorded: number[] = [];
      let compared = 0;
      let running = true;
      const watch = (async () => {
        while (running) {
          const t = await pnear.openImage(dst, { readOnly: true }).catch(() => undefined);
          if (t) {
            try {
              const rec = await t.getMetadata('rbd-stream.checkpoint');
              const done = rec === undefined ? 0 : (JSON.parse(rec) as { doneOffset: number }).doneOffset;
              if (done > (recorded.at(-1) ?? 0)) {
                recorded.push(done);
                // Everything below a recorded checkpoint is the source's data already.
                const got = await t.read(0, done);
                expect(got.equals(data.subarray(0, done)), `target [0, ${done}) differs from the source`).toBe(true);
                compared++;
              }
            } finally {
              await t.close();
            }
          }
          await new Promise((r) => setTimeout(r, 50));
        }
      })();
      try {
        await expectCode(
          replicate(withReplicateTestHooks({
            source: src, toSnapshot: 'base', target: { pool: pfar, name: dst, create: {} }, signal: ac.signal,
            chunkSize: 256 * KiB, bandwidth: 8 * MiB, // ~4 s: many checkpoints while ops are in flight
            onProgress: (p) => { if (p.bytesDone >= SIZE * 0.6 && !ac.signal.aborted) ac.abort(); },
          }, { checkpointMs: 20 })),
          'ABORT_ERR',
        );
      } finally {
        running = false;
        await watch;
      }
      // The watcher saw the checkpoint advance several times, and each step was checked.
      console.log(`[remote] checkpoints seen advancing during the copy: ${recorded.length}, last at ${recorded.at(-1)} of ${SIZE}`);
      expect(recorded.length, JSON.stringify(recorded)).toBeGreaterThanOrEqual(3);
      expect(compared).toBe(recorded.length);
      expect(recorded.at(-1)!).toBeLessThan(SIZE);

      const r = await replicate({ source: src, toSnapshot: 'base', target: { pool: pfar, name: dst } });
      expect(r.resumed).toBe(true);
      expect(r.bytesRead).toBeLessThanOrEqual(SIZE - recorded.at(-1)!);
      expect(await md5(B, `${dst}@base`)).toBe(await md5(A, `${srcName}@base`));
    } finally {
      await rnear.close();
      await src.close();
    }
  }, 300_000);
});
