// failback --mirror: the same orderly switch for images rbd-mirror replicates. B (-c) is the site
// primary since the disaster, A (--dest-conf) the original: report B→A replication, the operator
// stops B's writers, then the library's failback() (demote B, wait, promote A), then A's state.
import picomatch from 'picomatch';
import type { Image } from '../../core/image.js';
import type { Pool } from '../../core/pool.js';
import { failback } from '../../mirror/failover.js';
import type { SyncState } from '../../mirror/types.js';
import { controller, EXIT } from '../action.js';
import { UsageError } from '../options.js';
import { emitJson } from '../output.js';
import { confirmWritersStopped } from './writers.js';

/** A mirror failback refused before anything was done (exit code 4). */
export class MirrorRefused extends Error {
  constructor(public code: 'ERR_SPLIT_BRAIN' | 'ERR_NOT_PRIMARY', message: string) {
    super(`${code}: ${message}`); // as codedError's messages
  }
}

export interface MirrorFailbackArgs {
  poolB: Pool;
  poolA: Pool;
  /** One image: its names on B and A; a pool: undefined (--images filters). */
  image?: { b: string; a: string };
  images?: string;
  force: boolean;
  timeoutMs: number;
  writers: 'flag' | 'confirmed';
  label: string;
  json: boolean;
}

interface Pair {
  name: string;
  nameA: string;
  b: Image;
  a?: Image;
  mode?: string;
  splitBrain: boolean;
  replication?: SyncState;
  error?: { code: string; message: string };
}

/** Per image, in the --json output. */
export interface MirrorFailbackImage {
  name: string;
  ok: boolean;
  imageMode?: string;
  splitBrain: boolean;
  /** A was demoted and resynced from B (split-brain with --force): A's own writes are gone. */
  resynced: boolean;
  replication?: SyncState;
  primaryA?: boolean;
  primaryB?: boolean;
  current: boolean;
  error?: { code: string; message: string };
}

/** Flags that only mean something to a snapshot sync (their defaults are allowed). */
const SYNC_ONLY: [string, string, unknown][] = [
  ['verify', '--verify', undefined], ['concurrency', '--concurrency', undefined], ['inflight', '--inflight', undefined],
  ['writeGap', '--write-gap', undefined],
  ['bwlimit', '--bwlimit', undefined], ['prefix', '--prefix', 'rbd-sync-'], ['keepSource', '--keep-source', 3], ['keepTarget', '--keep-target', 3],
];

export function checkMirrorFlags(o: Record<string, unknown>): void {
  for (const [key, flag, dflt] of SYNC_ONLY) {
    if (o[key] !== undefined && o[key] !== dflt) throw new UsageError(`${flag} is for snapshot-sync failback; rbd-mirror copies the data itself (drop it, or drop --mirror)`);
  }
}

const errorOf = (e: unknown) => ({ code: String((e as { code?: string }).code ?? 'ERR_UNKNOWN'), message: String((e as Error).message ?? e) });

export async function mirrorFailback(x: MirrorFailbackArgs): Promise<number> {
  const say = (text: string) => { if (!x.json) process.stdout.write(text); };
  const opened: Image[] = [];
  const open = async (pool: Pool, name: string) => {
    const img = await pool.openImage(name); // not read-only: waitForSync's peer must see new snapshots
    opened.push(img);
    return img;
  };
  try {
    // Which images: one, or the pool's mirror-enabled images on B (primary there: the ones to fail back).
    const skipped: { name: string; reason: string }[] = [];
    let names: string[];
    if (x.image) {
      names = [x.image.b];
    } else {
      const enabled = (await x.poolB.mirror.listMirroredImages()).filter((m) => m.state === 'enabled' && m.name);
      const list = x.images?.includes(',') ? x.images.split(',').filter(Boolean) : undefined;
      const match = x.images !== undefined && !list ? picomatch(x.images) : undefined;
      const picked = enabled.filter((m) => (list ? list.includes(m.name) : match ? match(m.name) : true));
      for (const n of list ?? []) if (!picked.some((m) => m.name === n)) skipped.push({ name: n, reason: 'not a mirror-enabled image of the pool on B' });
      for (const m of picked.filter((p) => !p.primary)) skipped.push({ name: m.name, reason: 'not primary on B (nothing to fail back)' });
      names = picked.filter((m) => m.primary).map((m) => m.name).sort();
      if (names.length === 0) throw new MirrorRefused('ERR_NOT_PRIMARY', `no mirror-enabled image of ${x.label} on B is primary${x.images ? ` (--images ${x.images})` : ''}: nothing to fail back`);
    }

    // Checks, before anything is changed: B primary; A primary too (split-brain) only with --force.
    const pairs: Pair[] = [];
    for (const name of names) {
      const nameA = x.image?.a ?? name;
      const p = { name, nameA, splitBrain: false } as Pair;
      pairs.push(p);
      try {
        p.b = await open(x.poolB, name);
        p.a = await open(x.poolA, nameA);
        const [ib, ia] = await Promise.all([p.b.mirror.getInfo(), p.a.mirror.getInfo()]);
        p.mode = ib.mode;
        if (ib.state !== 'enabled' || ia.state !== 'enabled') throw Object.assign(new Error(`mirroring is not enabled on ${ib.state !== 'enabled' ? p.b.spec : p.a.spec}`), { code: 'EINVAL' });
        if (ib.globalId !== ia.globalId) throw Object.assign(new Error(`${p.b.spec} and ${p.a.spec} are not the same mirrored image (global ids differ)`), { code: 'EINVAL' });
        if (!ib.primary) throw new MirrorRefused('ERR_NOT_PRIMARY', `${p.b.spec} (B) is not primary: nothing to fail back`);
        p.splitBrain = ia.primary;
      } catch (e) {
        if (x.image) throw e;
        p.error = errorOf(e);
      }
    }
    const split = pairs.filter((p) => p.splitBrain);
    if (split.length > 0 && !x.force) {
      throw new MirrorRefused('ERR_SPLIT_BRAIN', `split-brain: ${split.map((p) => p.a!.spec).join(', ')} on A ${split.length === 1 ? 'is' : 'are'} primary too; ` +
        "failing back demotes A and resyncs it from B, discarding A's own writes since the split: pass --force to do that (nothing was changed)");
    }

    say(`step 1/4: replication ${x.label} (B) → A\n`);
    for (const p of pairs) {
      if (p.error) {
        say(`  FAILED ${p.name}: ${p.error.code}: ${p.error.message}\n`);
        continue;
      }
      if (p.splitBrain) {
        say(`  ${p.name}: split-brain (A primary too): A will be demoted and resynced from B, its own writes discarded (--force)\n`);
        continue;
      }
      try {
        // Snapshot mode copies at mirror snapshots: take one now, so A gets what B has so far.
        if (p.mode === 'snapshot') await p.b.mirror.createSnapshot();
        p.replication = await p.b.mirror.waitForSync({ timeoutMs: x.timeoutMs, signal: controller.signal, ...(p.mode === 'snapshot' ? { peer: p.a } : {}) });
        say(`  ok     ${p.name}: ${p.replication.mode === 'snapshot' ? `mirror snapshot ${p.replication.snapshotId} complete on A` : 'journal replayed on A (0 entries behind)'}\n`);
      } catch (e) {
        if (controller.signal.aborted) throw e;
        if (x.image) throw e;
        p.error = errorOf(e);
        say(`  FAILED ${p.name}: ${p.error.code}: ${p.error.message}\n`);
      }
    }
    if (pairs.some((p) => p.error)) return end(x, pairs, skipped, 'stopped after step 1: an image failed (nothing was demoted or promoted)');

    if (x.writers === 'confirmed') await confirmWritersStopped(x.label, 'nothing was demoted or promoted');
    say(`step 2/4: writers stopped (${x.writers === 'flag' ? '--writers-stopped' : 'confirmed'})\nstep 3/4: failback: demote B, wait for A to have everything, promote A\n`);
    for (const p of pairs) {
      try {
        // Re-checked: A promoted since the check would make this a resync nobody agreed to.
        if (!x.force && (await p.a!.mirror.getInfo()).primary) {
          throw new MirrorRefused('ERR_SPLIT_BRAIN', `${p.a!.spec} on A became primary since the check: not resyncing it without --force`);
        }
        const before = p.a!;
        p.a = await failback({
          primary: before, secondary: p.b, timeoutMs: x.timeoutMs, signal: controller.signal,
          onProgress: (s) => say(`  ${p.name}: ${s.step}: ${s.message}\n`),
        });
        if (p.a !== before) opened.push(p.a); // resync: the old handle was closed, this one is new
      } catch (e) {
        if (controller.signal.aborted || x.image) throw e;
        p.error = errorOf(e);
        say(`  FAILED ${p.name}: ${p.error.code}: ${p.error.message}\n`);
      }
    }
    return await end(x, pairs, skipped);
  } finally {
    await Promise.allSettled(opened.map((i) => i.close()));
  }
}

async function end(x: MirrorFailbackArgs, pairs: Pair[], skipped: { name: string; reason: string }[], stopped?: string): Promise<number> {
  const images: MirrorFailbackImage[] = [];
  for (const p of pairs) {
    const r: MirrorFailbackImage = { name: p.name, ok: !p.error, imageMode: p.mode, splitBrain: p.splitBrain, resynced: false, replication: p.replication, current: false, error: p.error };
    if (!p.error && !stopped) {
      const [ia, ib] = await Promise.all([p.a!.mirror.getInfo(), p.b.mirror.getInfo()]);
      r.primaryA = ia.primary;
      r.primaryB = ib.primary;
      r.resynced = p.splitBrain;
      // A non-forced promote of A succeeds only once B's demotion, and all before it, reached A.
      r.current = ia.primary && !ib.primary;
    }
    images.push(r);
  }
  const current = !stopped && images.every((i) => i.current);
  if (x.json) {
    const doc = x.image
      ? { mode: 'mirror', source: pairs[0].b.spec, target: pairs[0].a!.spec, writersStopped: stopped ? null : x.writers, ...images[0] }
      : { mode: 'mirror', pool: x.label, writersStopped: stopped ? null : x.writers, current, images, skipped, ...(stopped ? { stopped } : {}) };
    emitJson(doc);
  } else {
    process.stdout.write('step 4/4: state\n');
    for (const [i, r] of images.entries()) {
      if (!r.ok) continue;
      const a = pairs[i].a!.spec;
      process.stdout.write(r.current
        ? `  ${a} is primary and current (B demoted${r.resynced ? '; A was resynced from B' : ''})\n`
        : `  ${a}: NOT current (A ${r.primaryA ? 'primary' : 'non-primary'}, B ${r.primaryB ? 'primary' : 'non-primary'})\n`);
    }
    for (const s of skipped) process.stdout.write(`  skipped ${s.name}: ${s.reason}\n`);
    if (stopped) process.stdout.write(`${stopped}\n`);
  }
  if (controller.signal.aborted) return EXIT.INTERRUPTED;
  if (stopped || images.some((i) => !i.ok)) return EXIT.PARTIAL;
  return current ? EXIT.OK : EXIT.FAILED;
}
