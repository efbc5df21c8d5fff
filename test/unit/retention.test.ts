// Retention policies: pure, no Ceph, no addon. Property tests over random and simulated snapshot sets.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseRetention, selectRetention, slotOf, type RetentionPolicy } from '../../lib/transfer/retention.js';

const HOUR = 3_600_000;
const T0 = Date.UTC(2020, 0, 1);
const snapsArb = fc.uniqueArray(fc.integer({ min: 0, max: 3 * 365 * 24 * 60 }), { maxLength: 60 })
  .map((mins) => mins.map((m, i) => ({ name: `s${String(i).padStart(3, '0')}`, timestamp: new Date(T0 + m * 60_000) })));
const policyArb = fc.record({
  latest: fc.option(fc.integer({ min: 1, max: 10 }), { nil: undefined }),
  hours: fc.option(fc.integer({ min: 1, max: 30 }), { nil: undefined }),
  days: fc.option(fc.integer({ min: 1, max: 30 }), { nil: undefined }),
  weeks: fc.option(fc.integer({ min: 1, max: 10 }), { nil: undefined }),
  months: fc.option(fc.integer({ min: 1, max: 12 }), { nil: undefined }),
  years: fc.option(fc.integer({ min: 1, max: 3 }), { nil: undefined }),
}, { requiredKeys: [] });

describe('parseRetention', () => {
  it('accepts numbers and policies', () => {
    expect(parseRetention(3)).toEqual({ latest: 3 });
    expect(parseRetention('5')).toEqual({ latest: 5 });
    expect(parseRetention('latest3,hours24,days7,weeks4,months12,years2')).toEqual({ latest: 3, hours: 24, days: 7, weeks: 4, months: 12, years: 2 });
  });
  it.each(['', 'days', 'days0', 'fortnights2', 'days7,days3', 'latest-1', 'days7,'])('rejects %j with a RangeError naming the token', (v) => {
    expect(() => parseRetention(v, 'keep.source')).toThrow(RangeError);
    expect(() => parseRetention(v, 'keep.source')).toThrow(/keep\.source/);
  });
  it('names the bad token', () => expect(() => parseRetention('days7,bogus3')).toThrow(/'bogus3'/));
  it('TypeError for non-number non-string, RangeError for bad numbers', () => {
    expect(() => parseRetention(null)).toThrow(TypeError);
    expect(() => parseRetention({})).toThrow(TypeError);
    expect(() => parseRetention(0)).toThrow(RangeError);
    expect(() => parseRetention(1.5)).toThrow(RangeError);
  });
});

describe('selectRetention properties', () => {
  it('partitions the input; latestN keeps exactly min(N, count) newest', () => {
    fc.assert(fc.property(snapsArb, fc.integer({ min: 1, max: 80 }), (snaps, n) => {
      const r = selectRetention(snaps, { latest: n });
      expect(r.keep.length).toBe(Math.min(n, snaps.length));
      expect(new Set([...r.keep, ...r.prune]).size).toBe(snaps.length);
      const newest = [...snaps].sort((a, b) => b.timestamp.getTime() - a.timestamp.getTime()).slice(0, n).map((s) => s.name);
      expect(new Set(r.keep)).toEqual(new Set(newest));
    }));
  });
  it('each counted slot keeps exactly one snapshot, the newest in it; nothing else is kept', () => {
    fc.assert(fc.property(snapsArb, policyArb, (snaps, policy: RetentionPolicy) => {
      const r = selectRetention(snaps, policy);
      const byTime = [...snaps].sort((a, b) => b.timestamp.getTime() - a.timestamp.getTime());
      const expected = new Set(byTime.slice(0, policy.latest ?? 0).map((s) => s.name));
      for (const unit of ['hours', 'days', 'weeks', 'months', 'years'] as const) {
        const n = policy[unit];
        if (!n) continue;
        const slots = new Map<string, typeof snaps>();
        for (const s of byTime) {
          const k = slotOf(unit, s.timestamp);
          if (!slots.has(k)) slots.set(k, []);
          slots.get(k)!.push(s);
        }
        // The N most recent non-empty slots: exactly one kept by this rule, the newest.
        const counted = [...slots.values()].slice(0, n);
        for (const inSlot of counted) {
          const kept = inSlot.filter((s) => r.reasons[s.name]?.includes(unit));
          expect(kept.map((s) => s.name)).toEqual([inSlot[0].name]);
        }
        for (const inSlot of [...slots.values()].slice(n)) {
          expect(inSlot.some((s) => r.reasons[s.name]?.includes(unit))).toBe(false);
        }
        for (const inSlot of counted) expected.add(inSlot[0].name);
      }
      expect(new Set(r.keep)).toEqual(expected);
    }));
  });
  it('does not depend on input order', () => {
    fc.assert(fc.property(snapsArb.chain((s) => fc.tuple(fc.constant(s), fc.shuffledSubarray(s, { minLength: s.length }))), policyArb,
      ([a, b], policy) => {
        const ra = selectRetention(a, policy), rb = selectRetention(b, policy);
        expect(rb.keep).toEqual(ra.keep);
        expect(rb.prune).toEqual(ra.prune);
      }));
  });
});

describe('simulated rounds with an injected clock', () => {
  /** Runs a round every `step` ms for `span` ms, pruning after each as sync does. */
  function simulate(policy: RetentionPolicy, step: number, span: number) {
    let snaps: { name: string; timestamp: Date }[] = [];
    for (let now = T0, i = 0; now < T0 + span; now += step, i++) {
      snaps.push({ name: `r${String(i).padStart(6, '0')}`, timestamp: new Date(now) });
      const r = selectRetention(snaps, policy);
      expect(r.keep).toContain(snaps[snaps.length - 1].name); // the newest (next round's base) always survives
      const keep = new Set(r.keep);
      snaps = snaps.filter((s) => keep.has(s.name));
    }
    return snaps;
  }
  it('daily rounds for 3 years converge to days7 + weeks4 + months12 + years3 (overlaps counted once)', () => {
    const kept = simulate({ latest: 3, days: 7, weeks: 4, months: 12, years: 3 }, 24 * HOUR, 3 * 365 * 24 * HOUR);
    const p = selectRetention(kept, { days: 7, weeks: 4, months: 12, years: 3 });
    expect(p.prune).toEqual([]);
    // Newest 7 days (covers latest3 and ~1-2 weeks' newest), then weeks, months, years add older ones.
    expect(kept.length).toBeGreaterThanOrEqual(12 + 2);
    expect(kept.length).toBeLessThanOrEqual(3 + 7 + 4 + 12 + 3);
    const months = new Set(kept.map((s) => slotOf('months', s.timestamp)));
    expect(months.size).toBeGreaterThanOrEqual(12);
    expect(new Set(kept.map((s) => slotOf('years', s.timestamp))).size).toBe(3);
  });
  it('hourly rounds for 30 days keep exactly hours24 ∪ days7', () => {
    const kept = simulate({ hours: 24, days: 7 }, HOUR, 30 * 24 * HOUR);
    // 24 newest hours (within ≤2 days), plus the last snapshot of each of the 7 newest days:
    // the newest day's last hour is already among the 24, and if the 24 hours span 2 days, that one too.
    const last = kept[kept.length - 1].timestamp.getTime();
    const hoursKept = kept.filter((s) => s.timestamp.getTime() > last - 24 * HOUR);
    expect(hoursKept.length).toBe(24);
    expect(new Set(kept.map((s) => slotOf('days', s.timestamp))).size).toBe(7);
    expect(kept.length).toBe(24 + 7 - new Set(hoursKept.map((s) => slotOf('days', s.timestamp))).size);
  });
});
