// Retention policies for sync's prefixed snapshots: 'latest3,hours24,days7,weeks4,months12,years2'.
// Pure (no addon), so the tiers can be tested over simulated years without a cluster.

export type RetentionUnit = 'latest' | 'hours' | 'days' | 'weeks' | 'months' | 'years';
export type RetentionPolicy = Partial<Record<RetentionUnit, number>>;
export interface RetentionSnapshot { name: string; timestamp: Date }
export interface RetentionResult {
  keep: string[];
  prune: string[];
  /** Why each kept snapshot is kept, e.g. ['latest', 'days']. */
  reasons: Record<string, RetentionUnit[]>;
}

const UNITS: readonly RetentionUnit[] = ['latest', 'hours', 'days', 'weeks', 'months', 'years'];

/**
 * A number N means 'latestN'. A string is comma-separated `<unit><N>` tokens, N ≥ 1, each unit once.
 * TypeError for a non-number non-string, RangeError naming the bad token otherwise.
 */
export function parseRetention(v: unknown, what = 'keep'): RetentionPolicy {
  if (typeof v === 'number') {
    if (!Number.isSafeInteger(v) || v < 1) throw new RangeError(`${what} must be an integer ≥ 1 or a policy, got ${v}`);
    return { latest: v };
  }
  if (typeof v !== 'string') throw new TypeError(`${what} must be a number or a policy string such as 'latest3,days7'`);
  if (/^\d+$/.test(v.trim())) return parseRetention(Number(v.trim()), what);
  const p: RetentionPolicy = {};
  for (const raw of v.split(',')) {
    const tok = raw.trim();
    const m = /^([a-z]+)(\d+)$/.exec(tok);
    if (!m || !UNITS.includes(m[1] as RetentionUnit)) {
      throw new RangeError(`${what}: bad token '${tok}' (expected latestN, hoursN, daysN, weeksN, monthsN or yearsN)`);
    }
    const unit = m[1] as RetentionUnit;
    const n = Number(m[2]);
    if (!Number.isSafeInteger(n) || n < 1) throw new RangeError(`${what}: bad token '${tok}' (N must be ≥ 1)`);
    if (p[unit] !== undefined) throw new RangeError(`${what}: bad token '${tok}' (${unit} given twice)`);
    p[unit] = n;
  }
  return p;
}

/** The UTC calendar slot a time falls in; weeks are ISO weeks (Monday 00:00 UTC). */
export function slotOf(unit: Exclude<RetentionUnit, 'latest'>, t: Date): string {
  const y = t.getUTCFullYear(), mo = t.getUTCMonth(), d = t.getUTCDate();
  switch (unit) {
    case 'hours': return `${y}-${mo}-${d}T${t.getUTCHours()}`;
    case 'days': return `${y}-${mo}-${d}`;
    case 'weeks': {
      const monday = Date.UTC(y, mo, d) - ((t.getUTCDay() + 6) % 7) * 86_400_000;
      return `w${monday}`;
    }
    case 'months': return `${y}-${mo}`;
    case 'years': return `${y}`;
  }
}

/**
 * Which snapshots a policy keeps. Like restic: `latestN` keeps the N newest; `daysN` keeps the newest
 * snapshot of each of the N most recent UTC days that contain a snapshot (likewise hours, ISO weeks,
 * months, years). Slots are counted over snapshots, not back from a clock, so a paused schedule never
 * empties a tier. A snapshot is kept if any rule keeps it. Ties on time go to the greater name
 * (sync's names sort by time), so the result does not depend on input order.
 */
export function selectRetention(snapshots: readonly RetentionSnapshot[], policy: RetentionPolicy): RetentionResult {
  const sorted = [...snapshots].sort((a, b) => b.timestamp.getTime() - a.timestamp.getTime() || (a.name < b.name ? 1 : a.name > b.name ? -1 : 0));
  const reasons: Record<string, RetentionUnit[]> = {};
  const mark = (name: string, u: RetentionUnit) => { (reasons[name] ??= []).push(u); };
  for (const s of sorted.slice(0, policy.latest ?? 0)) mark(s.name, 'latest');
  for (const unit of UNITS) {
    if (unit === 'latest' || !policy[unit]) continue;
    const seen = new Set<string>();
    for (const s of sorted) {
      const slot = slotOf(unit, s.timestamp);
      if (seen.has(slot)) continue;
      if (seen.size >= policy[unit]!) break;
      seen.add(slot);
      mark(s.name, unit);
    }
  }
  const keep = sorted.filter((s) => reasons[s.name]).map((s) => s.name);
  const prune = sorted.filter((s) => !reasons[s.name]).map((s) => s.name);
  return { keep, prune, reasons };
}
