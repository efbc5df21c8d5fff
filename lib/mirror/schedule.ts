// Mirror-snapshot schedules, kept by the mgr's rbd_support module.
import { codedError, isRbdError, type RbdError } from '../core/errors.js';
import { checkBool, checkName, checkOptions, describe } from '../core/validate.js';
import type { Rados } from '../core/rados.js';
import type { ScheduleLevel, ScheduledImage, SnapshotScheduleLevel } from './types.js';

const INTERVAL_RE = /^[1-9][0-9]*[mhd]$/;

function levelSpec(level: ScheduleLevel, what: string, requirePool: boolean): string {
  const o = checkOptions<ScheduleLevel>(level, what, ['pool', 'namespace', 'image', 'interval', 'startTime', 'recursive']);
  if (o.pool === undefined) {
    if (requirePool) throw new TypeError(`${what}: pool is required`);
    if (o.namespace !== undefined || o.image !== undefined) throw new TypeError(`${what}: namespace/image need a pool`);
    return '';
  }
  const pool = checkName(o.pool, 'pool', { forbid: '/@' });
  const ns = o.namespace === undefined || o.namespace === '' ? '' : checkName(o.namespace, 'namespace', { forbid: '/@' });
  if (o.image === undefined) return ns ? `${pool}/${ns}/` : `${pool}/`;
  const image = checkName(o.image, 'image', { forbid: '/@' });
  return ns ? `${pool}/${ns}/${image}` : `${pool}/${image}`;
}

function pickLevel(o: ScheduleLevel): ScheduleLevel {
  const r: ScheduleLevel = {};
  if (o.pool !== undefined) r.pool = o.pool;
  if (o.namespace !== undefined) r.namespace = o.namespace;
  if (o.image !== undefined) r.image = o.image;
  return r;
}

function splitLevel(name: string): { pool: string; namespace: string; image: string } {
  const parts = name.split('/');
  if (parts.length === 2) return { pool: parts[0], namespace: '', image: parts[1] };
  if (parts.length >= 3) return { pool: parts[0], namespace: parts[1], image: parts.slice(2).join('/') };
  return { pool: name, namespace: '', image: '' };
}

/**
 * A command to the mgr's rbd_support module. Without that module running the mgr knows no handler
 * for the command (EINVAL "No handler found for '…'"): that becomes ERR_MGR_MODULE_UNAVAILABLE
 * naming the module, rather than an EINVAL that reads like a bad argument.
 */
async function rbdSupport(rados: Rados, cmd: Record<string, unknown>, json: boolean): Promise<unknown> {
  try {
    return json ? await rados.commandJson('mgr', cmd) : await rados.command('mgr', cmd);
  } catch (e) {
    const err = e as RbdError;
    if (isRbdError(e, 'EINVAL') && /no handler found/i.test(err.status ?? '')) {
      throw codedError('ERR_MGR_MODULE_UNAVAILABLE',
        `mgr command '${String(cmd.prefix)}' failed: the mgr's rbd_support module is not running (the mgr answered: ${err.status}); ` +
        "mirror snapshot schedules need it: see 'ceph mgr module ls' and 'ceph health detail'", {
          errno: err.errno, operation: `mgr command ${String(cmd.prefix)}`, status: err.status, cause: e,
        });
    }
    throw e;
  }
}

function checkInterval(v: unknown): string {
  if (typeof v !== 'string' || !INTERVAL_RE.test(v)) {
    throw new TypeError(`interval must be like '30m', '6h' or '1d', got ${typeof v === 'string' ? `'${v}'` : describe(v)}`);
  }
  return v;
}

function checkStartTime(v: unknown): string | undefined {
  if (v === undefined) return undefined;
  if (typeof v !== 'string' || !/^[0-9T:+\-. Z]{4,40}$/.test(v)) {
    throw new TypeError(`startTime must be a time like '14:00' or an ISO 8601 date-time, got ${describe(v)}`);
  }
  return v;
}

/** Adds a mirror-snapshot schedule at pool, namespace or image level. */
export async function addSnapshotSchedule(
  rados: Rados,
  options: ScheduleLevel & { interval: string; startTime?: string },
): Promise<void> {
  const spec = levelSpec(options, 'addSnapshotSchedule options', true);
  const interval = checkInterval(options.interval);
  const startTime = checkStartTime(options.startTime);
  const cmd: Record<string, unknown> = { prefix: 'rbd mirror snapshot schedule add', level_spec: spec, interval };
  if (startTime !== undefined) cmd.start_time = startTime;
  await rbdSupport(rados, cmd, false);
}

/** Removes schedules at a level: the one matching interval (and startTime), or all of them. */
export async function removeSnapshotSchedule(
  rados: Rados,
  options: ScheduleLevel & { interval?: string; startTime?: string },
): Promise<void> {
  const spec = levelSpec(options, 'removeSnapshotSchedule options', true);
  const cmd: Record<string, unknown> = { prefix: 'rbd mirror snapshot schedule remove', level_spec: spec };
  if (options.interval !== undefined) cmd.interval = checkInterval(options.interval);
  const st = checkStartTime(options.startTime);
  if (st !== undefined) {
    if (options.interval === undefined) throw new TypeError('startTime needs an interval');
    cmd.start_time = st;
  }
  // The mgr silently accepts removing a schedule that does not exist (unless the level never
  // had one): check first so a typo is an error, as users expect.
  const level = (await listSnapshotSchedules(rados, { ...pickLevel(options) })).find((l) => l.levelSpec === spec);
  const found = level?.schedules.some((x) => options.interval === undefined || x.interval === options.interval) ?? false;
  if (!found) {
    throw codedError('ENOENT', `remove mirror snapshot schedule '${spec}'${options.interval ? ` ${options.interval}` : ''} failed: no such schedule`, {
      errno: -2,
      operation: 'remove mirror snapshot schedule',
    });
  }
  await rbdSupport(rados, cmd, false);
}

/** '30m' | '6h' | '1d' (the mgr's interval syntax) in minutes; unknown forms sort last. */
function intervalMinutes(interval: string): number {
  const m = /^(\d+)([mhd])$/.exec(interval);
  if (!m) return Number.MAX_SAFE_INTEGER;
  return Number(m[1]) * { m: 1, h: 60, d: 1440 }[m[2] as 'm' | 'h' | 'd'];
}

/** Schedules at a level (all levels below it too with `recursive`), sorted by level spec, then interval. */
export async function listSnapshotSchedules(
  rados: Rados,
  options: ScheduleLevel & { recursive?: boolean } = {},
): Promise<SnapshotScheduleLevel[]> {
  const spec = levelSpec(options, 'listSnapshotSchedules options', false);
  const recursive = checkBool(options.recursive, 'recursive') ?? false;
  const out = await rbdSupport(rados, { prefix: 'rbd mirror snapshot schedule list', level_spec: spec }, true) as
    Record<string, { name: string; schedule: { interval: string; start_time: string | null }[] }> | undefined;
  const levels: SnapshotScheduleLevel[] = Object.values(out ?? {}).map((l) => ({
    levelSpec: l.name,
    ...splitLevel(l.name),
    // The mgr keeps schedules in a set: order them (shortest interval first) so results are stable.
    schedules: l.schedule
      .map((s) => ({ interval: s.interval, startTime: s.start_time || null }))
      .sort((x, y) => intervalMinutes(x.interval) - intervalMinutes(y.interval) || (x.startTime ?? '').localeCompare(y.startTime ?? '')),
  }));
  const wanted = recursive || spec === '' ? levels : levels.filter((l) => l.levelSpec === spec);
  return wanted.sort((a, b) => (a.levelSpec < b.levelSpec ? -1 : a.levelSpec > b.levelSpec ? 1 : 0));
}

/** Images with a pending scheduled mirror snapshot, and when it is due. */
export async function snapshotScheduleStatus(rados: Rados, options: ScheduleLevel = {}): Promise<ScheduledImage[]> {
  const spec = levelSpec(options, 'snapshotScheduleStatus options', false);
  const cmd: Record<string, unknown> = { prefix: 'rbd mirror snapshot schedule status' };
  if (spec) cmd.level_spec = spec;
  const out = await rbdSupport(rados, cmd, true) as { scheduled_images?: { image: string; schedule_time: string }[] } | undefined;
  return (out?.scheduled_images ?? []).map((s) => ({
    spec: s.image,
    ...splitLevel(s.image),
    // The mgr prints UTC without a zone.
    scheduleTime: new Date(`${s.schedule_time.replace(' ', 'T')}Z`),
  }));
}
