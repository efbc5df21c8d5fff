// Over 450 lines: one round's steps (state of both sides, common point, resume, copy, target group, prune) kept together.
// syncGroup: crash-consistent replication rounds of a consistency group, on top of replicate().
//
// A round's source point is one librbd group snapshot G_n: librbd quiesces the members' clients
// and blocks their writes (they stall and retry) while it snapshots every member, so the members'
// snapshots together are a crash-consistent point. Each member is replicated to a same-named image
// of the target pool, as a user snapshot named G_n whose recorded identity is the member's share of
// G_n; then the target group (created if missing, members added/removed to match) gets a group
// snapshot G_n too, so the target holds the same consistent set.
//
// A member's share of a group snapshot has no name a diff can start from. Two ways to diff it:
//   by-id   rbd_diff_iterate3 (Reef 18.2.5+): from G_{n-1}'s member snapshot id to G_n.
//   anchor  elsewhere (Pacific): each round first takes a user snapshot A_n ("<G_n>-anchor") on
//           every member, then G_n. A_{n-1} precedes G_{n-1}, so diff(A_{n-1} → G_n) covers
//           diff(G_{n-1} → G_n): writing G_n's data over those extents onto a copy of G_{n-1} gives
//           G_n exactly (more bytes: what changed between A_{n-1} and G_{n-1} is copied twice).
//
// Refusal codes (err.code), besides replicate's (a member's failure rejects the round with it):
//   ERR_MEMBER_COLLISION    two members (different pools) would be the same target image
//   ERR_WRONG_BASE          the target group holds the newest common group snapshot but a member's
//                           copy of it is missing or is a copy of something else (pass force)
//   ERR_NO_COMMON_SNAPSHOT  a member's target image exists but shares no point with it (pass force)
//   EEXIST                  a member's target image belongs to another group
import { codedError } from '../core/errors.js';
import { capabilities } from '../core/librbd.js';
import { checkGroupName, checkOptions, checkSignal, checkUint, describe } from '../core/validate.js';
import { Pool } from '../core/pool.js';
import type { Image } from '../core/image.js';
import { IDENTITY_KEY_PREFIX, identityKey, parseIdentity, sameSource, type SnapshotIdentity } from './identity.js';
import { replicate, type ReplicateResult } from './replicate/run.js';
import { CHECKPOINT_KEY, parseCheckpoint } from './replicate/checkpoint.js';
import { concurrencyShare, inflightShare } from './replicate/options.js';
import { heldSnapshots, takeLease, type RoundLease } from './lease.js';
import { selectRetention, type RetentionPolicy } from './retention.js';
import { byName, checkRoundOptions, snapTime, syncSnapshotName, type SyncKeep, type SyncProgress } from './sync.js';
import { Group } from '../core/group.js';

export interface SyncGroupOptions {
  /** The source group (its members are read at their new group snapshot, never written). */
  source: Group;
  /** Where the members and the group go: a pool (members keep their names) and the group's name (default the source's). */
  target: { pool: Pool; group?: string };
  /** Snapshot name prefix owned by sync (default 'rbd-sync-'). */
  prefix?: string;
  /** Group snapshots kept on each side: a count or a retention policy, as syncImage's. */
  keep?: SyncKeep;
  verify?: boolean;
  /**
   * Overwrite target members that share no point with their source member (full copy), or whose
   * copy of the newest common point is not that point; also overrides ERR_TARGET_CHANGED.
   */
  force?: boolean;
  /** Reads and writes in flight per member (replicate's concurrency). */
  concurrency?: number;
  /**
   * Data buffers in flight, in bytes, shared by the members being copied (default 80 MiB): each of
   * the `parallel` copies gets its share, at least 1 MiB.
   */
  inflightBytes?: number;
  /** Members copied at the same time (default 4). */
  parallel?: number;
  /** See ReplicateOptions.writeGap. */
  writeGap?: number;
  /** Cap on the data sent to the target in bytes per second, shared by the members being copied. */
  bandwidth?: number;
  signal?: AbortSignal;
  onProgress?: (p: SyncProgress) => void;
}

export interface SyncGroupMemberResult {
  /** Source member, pool[/ns]/image. */
  image: string;
  /** Target image, pool[/ns]/image. */
  target: string;
  mode: 'full' | 'incremental';
  /** The target snapshot the incremental copy was based on. */
  base?: string;
  /** Copied already by the interrupted round this one finished: nothing to do now. */
  skipped: boolean;
  /** Its copy resumed from replicate's checkpoint. */
  resumed: boolean;
  bytesRead: number;
  bytesWritten: number;
  bytesZeroed: number;
  copySeconds: number;
  /** See ReplicateResult.peakInflightBytes. */
  peakInflightBytes: number;
}

export interface SyncGroupResult {
  /** Source group, pool[/ns]/group. */
  group: string;
  /** Target group, pool[/ns]/group. */
  target: string;
  /** How members were diffed: from the base's member snapshot id, or from an anchor user snapshot. */
  method: 'by-id' | 'anchor';
  /** The group snapshot made (or resumed) on the source, now a group snapshot on the target too. */
  snapshot: string;
  /** The newest common group snapshot the round was based on. */
  base?: string;
  /** This round finished one an earlier run left interrupted (same snapshot). */
  resumed: boolean;
  members: SyncGroupMemberResult[];
  /** Members added to the target group this round (each got a full copy unless it had the point). */
  added: string[];
  /** Images removed from the target group: no longer source members (the images are kept). */
  removed: string[];
  bytesWritten: number;
  bytesZeroed: number;
  seconds: number;
  verified: boolean;
  /** Group snapshots removed (with their anchors on the source, their member snapshots on the target). */
  pruned: { source: string[]; target: string[] };
}

/** Key of syncGroup's test hooks in its options object (not exported from the package). */
export const kSyncGroupTestHooks: unique symbol = Symbol('rbd-stream.syncGroupTestHooks');

export interface SyncGroupTestHooks {
  /** The diff method, instead of the running librbd's best ('by-id' without rbd_diff_iterate3: ENOTSUP). */
  method?: 'by-id' | 'anchor';
  /** Runs after a new round's anchors are taken, before its group snapshot (anchor method). */
  afterAnchors?: () => Promise<void> | void;
}

const DEFAULT_PARALLEL = 4;
/** Suffix of the anchor user snapshot taken on every member just before group snapshot G. */
export const ANCHOR_SUFFIX = '-anchor';

/** A sync round's name: prefix + UTC timestamp (syncSnapshotName), nothing else. */
/** A round's group snapshot name: the prefix, then a syncSnapshotName timestamp. */
export const isRound = (name: string, prefix: string) => name.startsWith(prefix) && /^\d{8}T\d{6}\.\d{3}Z$/.test(name.slice(prefix.length));

interface Member {
  pool: Pool;
  name: string;
  spec: string;
  image: Image;
  imageId: string;
  /** Group snapshot name → the member's snapshot id of it. */
  gids: Map<string, number>;
  /** Group snapshot name → id of its anchor user snapshot. */
  anchors: Map<string, number>;
  /** The target image (open), when it exists. */
  target: Image | undefined;
  /** Target user snapshot name → its recorded identity. */
  copies: Map<string, SnapshotIdentity | undefined>;
  /** The target's checkpoint of an interrupted copy. */
  checkpointTo: SnapshotIdentity | undefined;
  /** The group the target image belongs to. */
  targetGroup: { poolId: number; name: string; pool: string } | undefined;
}

/**
 * One round: a new group snapshot on the source (or the one an interrupted round left), every
 * member replicated to the target from the newest common group snapshot, the target group
 * updated and snapshotted under the same name, then both sides pruned beyond `keep` (never the
 * newest common point). See docs/sync.md, "Consistency groups".
 */
export async function syncGroup(options: SyncGroupOptions): Promise<SyncGroupResult> {
  const o = checkOptions<SyncGroupOptions>(options, 'syncGroup options', [
    'source', 'target', 'prefix', 'keep', 'verify', 'force', 'concurrency', 'inflightBytes', 'parallel', 'writeGap', 'bandwidth', 'signal', 'onProgress',
  ]);
  if (!(o.source instanceof Group)) throw new TypeError(`source must be a Group, got ${describe(o.source)}`);
  const group = o.source;
  const t = checkOptions<{ pool: Pool; group?: string }>(o.target, 'target', ['pool', 'group']);
  if (!(t.pool instanceof Pool)) throw new TypeError(`target.pool must be a Pool, got ${describe(t.pool)}`);
  const tpool = t.pool;
  const tgroupName = t.group === undefined ? group.name : checkGroupName(t.group, 'target.group');
  const { prefix, keepSource, keepTarget, verify, force, inflightBytes, bandwidth } = checkRoundOptions(o);
  const parallel = o.parallel === undefined ? DEFAULT_PARALLEL : checkUint(o.parallel, 'parallel', { min: 1, max: 64 });
  const signal = checkSignal(o.signal);
  if (o.onProgress !== undefined && typeof o.onProgress !== 'function') throw new TypeError('onProgress must be a function');
  // Symbol keys pass checkOptions (it checks string keys); the hooks are checked the same way.
  const hooks = checkOptions<SyncGroupTestHooks>((options as { [kSyncGroupTestHooks]?: unknown })[kSyncGroupTestHooks], 'syncGroup test hooks', ['method', 'afterAnchors']);
  if (hooks.method !== undefined && hooks.method !== 'by-id' && hooks.method !== 'anchor') throw new RangeError(`method hook must be 'by-id' or 'anchor'`);
  signal?.throwIfAborted();

  const t0 = performance.now();
  const method: SyncGroupResult['method'] = hooks.method ?? (capabilities().diffIterate3 ? 'by-id' : 'anchor');
  const spool = group.pool;
  const groupSpec = group.spec;
  const targetGroupSpec = `${tpool.spec}/${tgroupName}`;
  const openedPools: Pool[] = [];
  const members: Member[] = [];
  let lease: RoundLease | undefined;
  try {
    // --- the members, and what each side holds -------------------------------------------------
    const [infos, fsid, targetImages, targetGroups] = await Promise.all([
      group.listImages(), spool.rados.fsid(), tpool.listImages(), tpool.listGroups(),
    ]);
    const byTargetName = new Map<string, string>();
    for (const info of infos) {
      const spec = `${info.pool}${spool.namespace ? `/${spool.namespace}` : ''}/${info.name}`;
      const other = byTargetName.get(info.name);
      if (other !== undefined) {
        throw codedError('ERR_MEMBER_COLLISION', `members '${other}' and '${spec}' of group '${groupSpec}' would both be '${tpool.spec}/${info.name}' on the target`, {
          image: info.name, pool: info.pool,
        });
      }
      byTargetName.set(info.name, spec);
    }
    const tgroupExists = targetGroups.includes(tgroupName);
    const tgroup = tgroupExists ? await tpool.openGroup(tgroupName) : undefined;
    const [gsnapsAll, tgroupSnaps, tgroupMembers] = await Promise.all([
      group.listSnapshots(),
      tgroup ? tgroup.listSnapshots() : [],
      tgroup ? tgroup.listImages() : [],
    ]);
    const gsnaps = gsnapsAll.filter((s) => isRound(s.name, prefix)).sort(byName);
    const complete = gsnaps.filter((s) => s.state === 'complete').map((s) => s.name);
    const tgroupSnapNames = new Set(tgroupSnaps.filter((s) => s.state === 'complete').map((s) => s.name));

    for (const info of infos) {
      let pool = spool;
      if (info.poolId !== spool.id) {
        pool = await spool.rados.openPool(info.pool, spool.namespace ? { namespace: spool.namespace } : {});
        openedPools.push(pool);
      }
      // A writable handle: anchors are user snapshots (librbd refuses them on a read-only one). It
      // never writes data, so a live client keeps its exclusive lock.
      const image = await pool.openImage(info.name);
      const m: Member = {
        pool, name: info.name, spec: `${pool.spec}/${info.name}`, image, imageId: '', gids: new Map(), anchors: new Map(),
        target: undefined, copies: new Map(), checkpointTo: undefined, targetGroup: undefined,
      };
      members.push(m);
    }
    await Promise.all(members.map(async (m) => {
      const [st] = await Promise.all([m.image.stat(), readMemberSnaps(m, group, prefix)]);
      m.imageId = st.id;
      if (!targetImages.includes(m.name)) return;
      m.target = await tpool.openImage(m.name);
      const [meta, tg] = await Promise.all([m.target.listMetadata(), m.target.getGroup()]);
      m.targetGroup = tg;
      const snaps = new Set((await m.target.listSnapshots()).map((s) => s.name));
      for (const [k, v] of Object.entries(meta)) {
        const name = k.slice(IDENTITY_KEY_PREFIX.length);
        if (k.startsWith(IDENTITY_KEY_PREFIX) && snaps.has(name)) m.copies.set(name, parseIdentity(v));
      }
      m.checkpointTo = parseCheckpoint(meta[CHECKPOINT_KEY])?.to;
    }));
    const identity = (m: Member, snapId: number): SnapshotIdentity => ({
      v: 1, fsid, pool: m.pool.name, poolId: m.pool.id, namespace: m.pool.namespace, image: m.name, imageId: m.imageId, snapId, snapName: '',
    });
    /** The member's target holds a recorded copy of its share of G, under G's name. */
    const hasCopy = (m: Member, g: string) => m.gids.has(g) && sameSource(m.copies.get(g), identity(m, m.gids.get(g)!));
    const copying = (m: Member, g: string) => m.gids.has(g) && sameSource(m.checkpointTo, identity(m, m.gids.get(g)!));

    // --- the newest common point: the newest group snapshot the target group holds -------------
    let common: string | undefined;
    const unusable = new Set<Member>();
    for (const g of [...complete].reverse()) {
      if (!tgroupSnapNames.has(g)) continue;
      // The target says it holds G: each member that was in G must hold its copy, by identity.
      const bad = members.filter((m) => m.gids.has(g) && !hasCopy(m, g));
      if (bad.length > 0 && !force) {
        throw codedError('ERR_WRONG_BASE', `target group '${targetGroupSpec}' has '${g}', but '${tpool.spec}/${bad[0].name}@${g}' is ${bad[0].copies.has(g) ? 'not a recorded copy of' : 'missing, the copy of'} '${bad[0].spec}' at that group snapshot (pass force to copy it in full)`, {
          snapshot: g, image: bad[0].name, pool: tpool.name,
        });
      }
      for (const m of bad) unusable.add(m);
      common = g;
      break;
    }
    const baseOf = (m: Member) => (common !== undefined && m.gids.has(common) && !unusable.has(m) ? common : undefined);

    // --- resume: the newest group snapshot, past the common one, that members were copying ------
    let snapshot: string | undefined;
    const newest = complete[complete.length - 1];
    if (newest !== undefined && newest !== common && (common === undefined || newest > common) && !tgroupSnapNames.has(newest) &&
      members.some((m) => hasCopy(m, newest) || copying(m, newest))) {
      snapshot = newest;
    }
    const resumed = snapshot !== undefined;

    // Before snapshotting: target images in another group (an image is in one group at most), and
    // members whose target exists with nothing to build on.
    for (const m of members) {
      const in_ = m.targetGroup;
      if (in_ && (in_.poolId !== tpool.id || in_.name !== tgroupName)) {
        throw codedError('EEXIST', `target image '${tpool.spec}/${m.name}' belongs to group '${in_.pool}/${in_.name}', not '${targetGroupSpec}'`, {
          errno: -17, image: m.name, pool: tpool.name,
        });
      }
    }
    for (const m of members) {
      if (!m.target || baseOf(m) !== undefined || force) continue;
      if (snapshot !== undefined && (hasCopy(m, snapshot) || copying(m, snapshot))) continue;
      throw codedError('ERR_NO_COMMON_SNAPSHOT',
        `syncGroup: target image '${tpool.spec}/${m.name}' exists but shares no '${prefix}*' group snapshot with member '${m.spec}' of '${groupSpec}' (pass force to overwrite it with a full copy)`,
        { image: m.name, pool: tpool.name });
    }
    signal?.throwIfAborted();

    // --- a new point -------------------------------------------------------------------------
    const newName = snapshot === undefined ? roundName(prefix, [...gsnaps.map((s) => s.name), ...tgroupSnapNames]) : undefined;
    // Before the point exists: no other round's pruning may take it, the base or the anchors diffed from.
    const needed = new Set([snapshot ?? newName!, (snapshot ?? newName!) + ANCHOR_SUFFIX]);
    for (const m of members) {
      const base = baseOf(m);
      if (base === undefined) continue;
      needed.add(base);
      const anchor = anchorFor(m, base, m.gids.get(base)!);
      if (anchor !== undefined) needed.add(anchor);
    }
    lease = await takeLease(members.map((m) => m.image), [...needed]);
    if (snapshot === undefined) {
      snapshot = newName!;
      const anchor = snapshot + ANCHOR_SUFFIX;
      if (method === 'anchor') await Promise.all(members.map((m) => m.image.createSnapshot(anchor)));
      try {
        if (method === 'anchor') await hooks.afterAnchors?.();
        await group.createSnapshot(snapshot);
      } catch (e) {
        if (method === 'anchor') await Promise.allSettled(members.map((m) => m.image.removeSnapshot(anchor)));
        throw e;
      }
      await Promise.all(members.map((m) => readMemberSnaps(m, group, prefix)));
    }
    const snap = snapshot;

    // --- copy the members, `parallel` at a time ----------------------------------------------
    const results: SyncGroupMemberResult[] = new Array(members.length);
    const failures: unknown[] = [];
    const workers = Math.min(parallel, members.length);
    const share = bandwidth === undefined ? undefined : Math.max(1, Math.floor(bandwidth / Math.max(1, workers)));
    let next = 0;
    const copyOne = async (m: Member): Promise<SyncGroupMemberResult> => {
      const tspec = `${tpool.spec}/${m.name}`;
      const toSnapId = m.gids.get(snap);
      if (toSnapId === undefined) {
        throw codedError('ENOENT', `member '${m.spec}' has no snapshot of group snapshot '${groupSpec}@${snap}' (added to the group during the round?)`, {
          errno: -2, image: m.name, pool: m.pool.name, snapshot: snap,
        });
      }
      const base = baseOf(m);
      if (hasCopy(m, snap)) {
        return { image: m.spec, target: tspec, mode: base ? 'incremental' : 'full', ...(base ? { base } : {}), skipped: true, resumed: false, bytesRead: 0, bytesWritten: 0, bytesZeroed: 0, copySeconds: 0, peakInflightBytes: 0 };
      }
      const fromSnapId = base === undefined ? undefined : m.gids.get(base)!;
      const anchor = fromSnapId === undefined ? undefined : anchorFor(m, base!, fromSnapId);
      const { features } = await m.image.stat();
      const r: ReplicateResult = await replicate({
        source: m.image,
        toSnapId,
        toSnapshot: snap,
        ...(fromSnapId !== undefined ? { fromSnapId } : {}),
        // Where librbd can diff from the base's id, the anchor only costs bytes.
        ...(anchor !== undefined && method === 'anchor' ? { diffFromSnapshot: anchor } : {}),
        target: m.target ? { pool: tpool, name: m.name } : { pool: tpool, name: m.name, create: { features } },
        verify,
        force,
        concurrency: concurrencyShare(o.concurrency, workers),
        inflightBytes: inflightShare(inflightBytes, workers),
        writeGap: o.writeGap,
        bandwidth: share,
        signal,
        onProgress: o.onProgress ? (p) => o.onProgress!({ ...p, image: m.spec, phase: 'copy' }) : undefined,
      });
      return {
        image: m.spec, target: tspec, mode: base ? 'incremental' : 'full', ...(base ? { base: r.base ?? base } : {}), skipped: false,
        resumed: r.resumed, bytesRead: r.bytesRead, bytesWritten: r.bytesWritten, bytesZeroed: r.bytesZeroed, copySeconds: r.seconds,
        peakInflightBytes: r.peakInflightBytes,
      };
    };
    await Promise.all(Array.from({ length: workers }, async () => {
      while (next < members.length) {
        const i = next++;
        try {
          signal?.throwIfAborted();
          results[i] = await copyOne(members[i]);
        } catch (e) {
          failures.push(e);
        }
      }
    }));
    // Members copied stay copied (a re-run skips them); the target group snapshot needs them all.
    if (failures.length > 0) throw failures[0];

    // --- the target group: members as on the source, then the same group snapshot -------------
    const tg = tgroup ?? (await tpool.createGroup(tgroupName));
    const inTarget = new Set(tgroupMembers.filter((i) => i.poolId === tpool.id).map((i) => i.name));
    const added: string[] = [];
    const removed: string[] = [];
    for (const m of members) {
      if (inTarget.has(m.name)) continue;
      await tg.addImage({ pool: tpool, name: m.name });
      added.push(m.name);
    }
    for (const name of [...inTarget].sort()) {
      if (byTargetName.has(name)) continue;
      await tg.removeImage({ pool: tpool, name });
      removed.push(name);
    }
    if (!tgroupSnapNames.has(snap)) {
      // One left incomplete by a failed attempt holds the name: librbd would answer EEXIST.
      if (tgroupSnaps.some((x) => x.name === snap)) await tg.removeSnapshot(snap);
      await tg.createSnapshot(snap);
    }

    // --- prune ----------------------------------------------------------------------------------
    await lease.release();
    const pruned = {
      source: await pruneSource(group, members, prefix, keepSource, snap),
      target: await pruneTarget(tg, members, prefix, keepTarget, snap),
    };
    const ok = results;
    return {
      group: groupSpec,
      target: targetGroupSpec,
      method,
      snapshot: snap,
      ...(common !== undefined ? { base: common } : {}),
      resumed,
      members: ok,
      added,
      removed,
      bytesWritten: ok.reduce((n, r) => n + r.bytesWritten, 0),
      bytesZeroed: ok.reduce((n, r) => n + r.bytesZeroed, 0),
      seconds: (performance.now() - t0) / 1000,
      verified: verify,
      pruned,
    };
  } finally {
    await lease?.release();
    await Promise.allSettled(members.flatMap((m) => [m.image.close(), m.target?.close()]));
    await Promise.allSettled(openedPools.map((p) => p.close()));
  }
}

/** The member's shares of the group's prefixed group snapshots, and its anchors, by group snapshot name. */
async function readMemberSnaps(m: Member, group: Group, prefix: string): Promise<void> {
  m.gids.clear();
  m.anchors.clear();
  for (const s of await m.image.listSnapshots({ allNamespaces: true })) {
    if (s.namespace === 'group' && s.group && s.group.name === group.name && s.group.pool === group.pool.id && isRound(s.group.snapshot, prefix)) {
      m.gids.set(s.group.snapshot, s.id);
    } else if (s.namespace === 'user' && s.name.endsWith(ANCHOR_SUFFIX) && isRound(s.name.slice(0, -ANCHOR_SUFFIX.length), prefix)) {
      m.anchors.set(s.name.slice(0, -ANCHOR_SUFFIX.length), s.id);
    }
  }
}

/** The anchor to diff from for base G: G's own, else the newest older than G's member snapshot (none: by id). */
function anchorFor(m: Member, base: string, baseSnapId: number): string | undefined {
  const own = m.anchors.get(base);
  if (own !== undefined && own < baseSnapId) return base + ANCHOR_SUFFIX;
  let best: [string, number] | undefined;
  for (const [g, id] of m.anchors) if (id < baseSnapId && (!best || id > best[1])) best = [g, id];
  return best ? best[0] + ANCHOR_SUFFIX : undefined;
}

/** prefix + timestamp, strictly after every existing round name (clock steps, same millisecond). */
function roundName(prefix: string, existing: string[]): string {
  const last = existing.filter((n) => isRound(n, prefix)).sort().pop();
  let name = syncSnapshotName(prefix);
  let bump = Date.now();
  while ((last !== undefined && name <= last) || existing.includes(name)) {
    bump += 1;
    name = syncSnapshotName(prefix, new Date(Math.max(bump, Date.now())));
  }
  return name;
}

/** Group snapshots `keep` does not keep (never `newest`), named as sync names them. */
function beyondKeep(names: string[], prefix: string, keep: RetentionPolicy, newest: string): string[] {
  const sel = selectRetention(names.map((name) => ({ name, timestamp: snapTime({ name, timestamp: new Date(0) }, prefix) })), keep);
  return sel.prune.filter((n) => n !== newest).sort();
}

/** Source: group snapshots beyond keep, with their anchors; anchors of group snapshots gone. */
async function pruneSource(group: Group, members: Member[], prefix: string, keep: RetentionPolicy, newest: string): Promise<string[]> {
  const names = (await group.listSnapshots()).map((s) => s.name).filter((n) => isRound(n, prefix));
  const beyond = beyondKeep(names, prefix, keep, newest);
  const held = beyond.length > 0 || members.some((m) => m.anchors.size > 0) ? await heldByAny(members.map((m) => m.image)) : new Set<string>();
  const prune = beyond.filter((g) => !held.has(g));
  for (const g of prune) await group.removeSnapshot(g);
  const remaining = new Set(names.filter((n) => !prune.includes(n)));
  for (const m of members) {
    for (const g of m.anchors.keys()) {
      if (!remaining.has(g) && g !== newest && !held.has(g + ANCHOR_SUFFIX)) await m.image.removeSnapshot(g + ANCHOR_SUFFIX);
    }
  }
  return prune;
}

/** Target: group snapshots beyond keep, with the members' user snapshots (and identity records) of the same names. */
async function pruneTarget(tg: Group, members: Member[], prefix: string, keep: RetentionPolicy, newest: string): Promise<string[]> {
  const names = (await tg.listSnapshots()).map((s) => s.name).filter((n) => isRound(n, prefix));
  const beyond = beyondKeep(names, prefix, keep, newest);
  if (beyond.length === 0) return [];
  const targets: Image[] = [];
  const opened: Image[] = [];
  try {
    for (const m of members) {
      const t = m.target ?? (await tg.pool.openImage(m.name));
      if (t !== m.target) opened.push(t);
      targets.push(t);
    }
    // A round running the other way (these images its source) may need some of them.
    const held = await heldByAny(targets);
    const prune = beyond.filter((g) => !held.has(g));
    for (const g of prune) await tg.removeSnapshot(g);
    const gone = new Set(prune);
    for (const t of targets) {
      for (const s of await t.listSnapshots()) {
        if (!gone.has(s.name) || s.protected) continue;
        await t.removeSnapshot(s.name);
        await t.removeMetadata(identityKey(s.name)).catch(() => {});
      }
    }
    return prune;
  } finally {
    await Promise.allSettled(opened.map((t) => t.close()));
  }
}

/** The snapshot names unexpired round leases on any of these images hold. */
async function heldByAny(images: Image[]): Promise<Set<string>> {
  const held = new Set<string>();
  for (const h of await Promise.all(images.map((i) => heldSnapshots(i)))) for (const s of h) held.add(s);
  return held;
}
