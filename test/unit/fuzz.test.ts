// Property-based fuzzing (fast-check), ≥ 10k cases in all, no cluster needed:
// - image specs (pool[/namespace]/image[@snap]) as the CLI parses them;
// - the rbd diff stream parser on mutated valid streams and on random record sequences.
// Every input must give a result consistent with the input, or a coded error — never a crash,
// a foreign exception type or a hang. (diffstream.test.ts has round-trip properties; these
// go after malformed input.)
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseImageSpec } from '../../lib/cli/options.js';
import {
  END_RECORD, TAG, encodeBanner, encodeExtentHead, encodeName, encodeProtect, encodeSize, parseDiff, protectRecordLength,
  type DiffEvent,
} from '../../lib/transfer/diff-format.js';
import { checkImageName, checkName, checkSnapName } from '../../lib/core/validate.js';
import { chunk } from '../support/chunks.js';

const RUNS = { spec: 3000, specRoundTrip: 1500, mutated: 3000, records: 2000, chunking: 500 };
let totalRuns = 0;
const count = (n: number) => { totalRuns += n; return { numRuns: n }; };

// --- image specs -----------------------------------------------------------------------------

/** Strings rich in the characters that matter to a spec: / @ NUL, and some unicode. */
const specChars = fc.string({
  unit: fc.oneof(
    { weight: 3, arbitrary: fc.constantFrom('/', '@', '\0', 'a', 'b', '-', '.', ' ') },
    { weight: 1, arbitrary: fc.string({ unit: 'binary', minLength: 1, maxLength: 1 }) },
  ),
  maxLength: 24,
});
const component = fc.string({ unit: fc.constantFrom(...'abcXYZ019._- é'.split('')), minLength: 1, maxLength: 12 });

describe('image spec parser (fuzz)', () => {
  it('any string parses into non-empty parts that recompose to it, or is a usage error', () => {
    fc.assert(fc.property(specChars, fc.constantFrom('required', 'optional', 'forbidden'), (spec, snapMode) => {
      let r;
      try {
        r = parseImageSpec(spec, snapMode as 'required');
      } catch (e) {
        expect((e as { code?: string }).code).toBe('ERR_USAGE');
        expect((e as Error).message).toContain('spec');
        return;
      }
      for (const p of [r.pool, r.image]) expect(p.length).toBeGreaterThan(0);
      for (const p of [r.pool, r.namespace, r.image]) expect(p).not.toMatch(/[/@]/);
      if (snapMode === 'required') expect(r.snap).toBeDefined();
      if (snapMode === 'forbidden') expect(r.snap).toBeUndefined();
      if (r.snap !== undefined) expect(r.snap.length).toBeGreaterThan(0);
      const path = spec.split('@')[0];
      const recomposed = path.includes('/') ? [r.pool, r.namespace, r.image].filter(Boolean).join('/') : r.image;
      expect(recomposed + (r.snap !== undefined ? `@${r.snap}` : '')).toBe(spec);
      // What the library does next with the parts: accept, or TypeError/RangeError — never more.
      for (const [f, v] of [[checkName, r.pool], [checkImageName, r.image], [checkSnapName, r.snap]] as const) {
        if (v === undefined) continue;
        try {
          (f as (x: string, w: string) => string)(v, 'part');
        } catch (e) {
          expect(e instanceof TypeError || e instanceof RangeError).toBe(true);
        }
      }
    }), count(RUNS.spec));
  });

  it('specs built from valid parts round-trip', () => {
    fc.assert(fc.property(component, fc.option(component, { nil: undefined }), component, fc.option(component, { nil: undefined }),
      (pool, ns, image, snap) => {
        const spec = `${pool}/${ns ? `${ns}/` : ''}${image}${snap ? `@${snap}` : ''}`;
        expect(parseImageSpec(spec, 'optional')).toEqual({ pool, namespace: ns ?? '', image, snap });
      }), count(RUNS.specRoundTrip));
  });
});

// --- diff stream parser ---------------------------------------------------------------------

const CODES = /^ERR_DIFF_(BANNER|TRUNCATED|UNKNOWN_TAG|RANGE|CORRUPT)$/;
const SIZE = 1 << 20;

const nameArb = fc.stringMatching(/^[a-z0-9._-]{1,16}$/);
const validStream = fc.record({
  v: fc.constantFrom(1 as const, 2 as const),
  from: fc.option(nameArb, { nil: undefined }),
  to: fc.option(nameArb, { nil: undefined }),
  prot: fc.option(fc.boolean(), { nil: undefined }),
  // The 'p' record length: 8 as Pacific's rbd writes it, 1 as Quincy's and later.
  protLen: fc.constantFrom(1 as const, 8 as const),
  extents: fc.array(fc.record({
    zero: fc.boolean(),
    offset: fc.integer({ min: 0, max: SIZE - 512 }),
    length: fc.integer({ min: 1, max: 512 }),
  }), { maxLength: 6 }),
}).map((s) => {
  const parts = [encodeBanner(s.v)];
  if (s.from) parts.push(encodeName(s.v, TAG.from, s.from));
  if (s.to) parts.push(encodeName(s.v, TAG.to, s.to));
  if (s.v === 2 && s.prot !== undefined) parts.push(encodeProtect(s.prot, s.protLen));
  parts.push(encodeSize(s.v, SIZE));
  for (const e of s.extents) {
    parts.push(encodeExtentHead(s.v, e.zero, e.offset, e.length));
    if (!e.zero) parts.push(Buffer.alloc(e.length, 0xab));
  }
  parts.push(END_RECORD);
  return Buffer.concat(parts);
});

type Mutation = { kind: 'flip' | 'set' | 'insert' | 'delete'; at: number; byte: number; n: number };
const mutation = fc.record({
  kind: fc.constantFrom('flip', 'set', 'insert', 'delete'),
  at: fc.nat(),
  byte: fc.integer({ min: 0, max: 255 }),
  n: fc.integer({ min: 1, max: 9 }),
}) as fc.Arbitrary<Mutation>;

function mutate(buf: Buffer, ms: Mutation[]): Buffer {
  let b = Buffer.from(buf);
  for (const m of ms) {
    const at = b.length === 0 ? 0 : m.at % b.length;
    if (m.kind === 'flip' && b.length) b[at] ^= 1 << (m.byte % 8);
    else if (m.kind === 'set' && b.length) b[at] = m.byte;
    else if (m.kind === 'insert') b = Buffer.concat([b.subarray(0, at), Buffer.alloc(m.n, m.byte), b.subarray(at)]);
    else if (m.kind === 'delete') b = Buffer.concat([b.subarray(0, at), b.subarray(at + m.n)]);
  }
  return b;
}


/** Parses fully; returns the events or the error. Checks invariants of whatever it yields. */
async function parseAll(chunks: Buffer[], maxChunk?: number): Promise<{ events: DiffEvent[]; error?: { code?: string } }> {
  const events: DiffEvent[] = [];
  const total = chunks.reduce((n, c) => n + c.length, 0);
  let dataBytes = 0;
  let size: number | undefined;
  try {
    for await (const ev of parseDiff(chunks, maxChunk ? { maxChunk } : {})) {
      events.push(ev);
      if (ev.type === 'size') size = ev.size;
      if (ev.type === 'data') {
        dataBytes += ev.data.length;
        if (maxChunk) expect(ev.data.length).toBeLessThanOrEqual(maxChunk);
      }
      if (ev.type === 'write' || ev.type === 'zero') {
        expect(Number.isSafeInteger(ev.offset + ev.length)).toBe(true);
        if (size !== undefined) expect(ev.offset + ev.length).toBeLessThanOrEqual(size);
      }
    }
  } catch (e) {
    expect(e).toBeInstanceOf(Error);
    expect((e as { code?: string }).code, String(e)).toMatch(CODES);
    expect(typeof (e as { position?: number }).position).toBe('number');
    return { events, error: e as { code?: string } };
  }
  expect(dataBytes).toBeLessThanOrEqual(total);
  expect(events[0]?.type).toBe('banner');
  expect(events[events.length - 1]?.type).toBe('end');
  return { events };
}

describe('diff stream parser (fuzz)', () => {
  it('mutated valid streams: complete parse with sane events, or a coded ERR_DIFF_* error', async () => {
    await fc.assert(fc.asyncProperty(validStream, fc.array(mutation, { minLength: 1, maxLength: 4 }), fc.array(fc.nat(), { maxLength: 6 }),
      async (buf, ms, cuts) => { await parseAll(chunk(mutate(buf, ms), cuts)); }), count(RUNS.mutated));
  });

  it('random record sequences (any tag, any u64 incl. > 2^53): coded errors only', async () => {
    const u64 = fc.oneof(
      fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }),
      fc.constantFrom(0n, 1n, 2n ** 53n - 1n, 2n ** 53n, 2n ** 53n + 1n, 2n ** 63n, 2n ** 64n - 1n, BigInt(SIZE)),
      fc.bigInt({ min: 0n, max: 600n }),
    );
    const record = fc.record({
      tag: fc.oneof(fc.constantFrom(...Object.values(TAG)), fc.integer({ min: 0, max: 255 })),
      a: u64, b: u64, c: u64, nameLen: fc.integer({ min: 0, max: 5000 }), payload: fc.uint8Array({ maxLength: 40 }),
    });
    await fc.assert(fc.asyncProperty(fc.constantFrom(1 as const, 2 as const), fc.array(record, { maxLength: 8 }), fc.boolean(),
      async (v, recs, end) => {
        const parts = [encodeBanner(v)];
        for (const r of recs) {
          const h = Buffer.alloc(1 + 24 + 4);
          h[0] = r.tag;
          h.writeBigUInt64LE(r.a, 1);
          h.writeBigUInt64LE(r.b, 9);
          h.writeBigUInt64LE(r.c, 17);
          h.writeUInt32LE(r.nameLen, 25);
          parts.push(h.subarray(0, 1 + (r.tag % 4) * 8 + (r.tag % 2) * 4), Buffer.from(r.payload));
        }
        if (end) parts.push(END_RECORD);
        await parseAll(parts, 64);
      }), count(RUNS.records));
  });

  it('valid streams parse identically however they are chunked, with bounded data events', async () => {
    await fc.assert(fc.asyncProperty(validStream, fc.array(fc.nat(), { maxLength: 20 }), fc.integer({ min: 1, max: 64 }),
      async (buf, cuts, maxChunk) => {
        const whole = await parseAll([buf]);
        expect(whole.error).toBeUndefined();
        const split = await parseAll(chunk(buf, cuts), maxChunk);
        expect(split.error).toBeUndefined();
        const shape = (evs: DiffEvent[]) => evs.filter((e) => e.type !== 'data');
        expect(shape(split.events)).toEqual(shape(whole.events));
        const bytes = (evs: DiffEvent[]) => Buffer.concat(evs.flatMap((e) => (e.type === 'data' ? [e.data] : [])));
        expect(bytes(split.events).equals(bytes(whole.events))).toBe(true);
      }), count(RUNS.chunking));
  });

  it("the v2 'p' record length follows the release: 8 up to Pacific (librbd 1.16), 1 from Quincy (1.17)", async () => {
    expect([protectRecordLength('1.16.0'), protectRecordLength('1.17.0'), protectRecordLength('1.18.0'), protectRecordLength('1.20.0')])
      .toEqual([8, 1, 1, 1]);
    expect(() => protectRecordLength('x')).toThrow(RangeError);
    for (const len of [1, 8] as const) {
      const p = encodeProtect(true, len);
      expect([...p.subarray(0, 10)]).toEqual([0x70, len, 0, 0, 0, 0, 0, 0, 0, 1]);
      const evs: DiffEvent[] = [];
      for await (const ev of parseDiff([Buffer.concat([encodeBanner(2), encodeName(2, TAG.to, 's'), p, encodeSize(2, SIZE), END_RECORD])])) evs.push(ev);
      expect(evs).toContainEqual({ type: 'protect', protected: true });
    }
  });

  it('ran at least 10k cases in total', () => {
    expect(totalRuns).toBeGreaterThanOrEqual(10_000);
  });
});
