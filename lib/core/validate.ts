// Argument validation shared by every class: bad arguments fail with TypeError or
// RangeError before any native call.

const MAX_NAME_BYTES = 1024;

/** Pool, image, snapshot and metadata names: non-empty strings without NUL. */
export function checkName(value: unknown, what: string, opts: { forbid?: string } = {}): string {
  if (typeof value !== 'string') throw new TypeError(`${what} must be a string, got ${describe(value)}`);
  if (value.length === 0) throw new RangeError(`${what} must not be empty`);
  if (Buffer.byteLength(value) > MAX_NAME_BYTES) throw new RangeError(`${what} is longer than ${MAX_NAME_BYTES} bytes`);
  if (value.includes('\0')) throw new TypeError(`${what} must not contain NUL`);
  for (const ch of opts.forbid ?? '') {
    if (value.includes(ch)) throw new TypeError(`${what} must not contain '${ch}'`);
  }
  return value;
}

export const checkImageName = (v: unknown, what = 'image name') => checkName(v, what, { forbid: '/@' });
export const checkSnapName = (v: unknown, what = 'snapshot name') => checkName(v, what, { forbid: '/@' });
export const checkGroupName = (v: unknown, what = 'group name') => checkName(v, what, { forbid: '/@' });

/** Offsets, lengths, sizes: non-negative safe integers. */
export function checkUint(value: unknown, what: string, opts: { max?: number; min?: number } = {}): number {
  if (typeof value !== 'number') throw new TypeError(`${what} must be a number, got ${describe(value)}`);
  if (!Number.isSafeInteger(value) || value < (opts.min ?? 0)) {
    throw new RangeError(`${what} must be an integer in [${opts.min ?? 0}, ${opts.max ?? Number.MAX_SAFE_INTEGER}], got ${value}`);
  }
  if (opts.max !== undefined && value > opts.max) {
    throw new RangeError(`${what} must be at most ${opts.max}, got ${value}`);
  }
  return value;
}

export function checkOptions<T extends object>(value: unknown, what: string, allowed: readonly string[]): Partial<T> {
  if (value === undefined) return {};
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new TypeError(`${what} must be an object, got ${describe(value)}`);
  }
  for (const k of Object.keys(value)) {
    if (!allowed.includes(k)) throw new TypeError(`${what}: unknown option '${k}' (allowed: ${allowed.join(', ')})`);
  }
  return value as Partial<T>;
}

export function checkBool(value: unknown, what: string): boolean | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'boolean') throw new TypeError(`${what} must be a boolean, got ${describe(value)}`);
  return value;
}

export function checkSignal(value: unknown, what = 'signal'): AbortSignal | undefined {
  if (value === undefined) return undefined;
  if (!(value instanceof AbortSignal)) throw new TypeError(`${what} must be an AbortSignal`);
  return value;
}

export function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  if (typeof v === 'number') return Number.isNaN(v) ? 'NaN' : `number ${v}`;
  return typeof v;
}

/** Largest single read/write we accept (librbd takes size_t; Node buffers cap lower). */
export const MAX_IO_BYTES = 1024 * 1024 * 1024;

/**
 * A `fromSnapId` option checked (a snapshot id: non-negative integer, number or bigint, < 2^64)
 * and returned as the bigint the addon takes; undefined when absent. `fromSnapshot` (by name)
 * and `fromSnapId` exclude each other.
 */
export function checkFromSnapId(id: unknown, fromSnapshot: unknown, what = 'fromSnapId'): bigint | undefined {
  if (id === undefined) return undefined;
  if (fromSnapshot !== undefined) throw new TypeError(`pass either fromSnapshot or ${what}, not both`);
  let v: bigint;
  if (typeof id === 'bigint') v = id;
  else if (typeof id === 'number' && Number.isInteger(id)) {
    if (!Number.isSafeInteger(id)) throw new RangeError(`${what} must be a safe integer (or a bigint), got ${id}`);
    v = BigInt(id);
  } else throw new TypeError(`${what} must be a snapshot id (integer or bigint), got ${describe(id)}`);
  if (v < 0n || v >= 1n << 64n) throw new RangeError(`${what} must be in [0, 2^64), got ${v}`);
  return v;
}
