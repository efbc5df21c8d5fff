// RBD feature names ↔ bits (include/rbd/features.h).
export const FEATURE_BITS = {
  layering: 1 << 0,
  striping: 1 << 1,
  'exclusive-lock': 1 << 2,
  'object-map': 1 << 3,
  'fast-diff': 1 << 4,
  'deep-flatten': 1 << 5,
  journaling: 1 << 6,
  'data-pool': 1 << 7,
  operations: 1 << 8,
  migrating: 1 << 9,
  'non-primary': 1 << 10,
  'dirty-cache': 1 << 11,
} as const;

export type FeatureName = keyof typeof FEATURE_BITS;

export const FLAG_OBJECT_MAP_INVALID = 1;
export const FLAG_FAST_DIFF_INVALID = 2;

export function featureBits(names: readonly string[], what = 'features'): number {
  if (!Array.isArray(names)) throw new TypeError(`${what} must be an array of feature names`);
  let bits = 0;
  for (const n of names) {
    const b = (FEATURE_BITS as Record<string, number>)[n];
    if (b === undefined) {
      throw new RangeError(`${what}: unknown feature '${String(n)}' (known: ${Object.keys(FEATURE_BITS).join(', ')})`);
    }
    bits |= b;
  }
  return bits;
}

export function featureNames(bits: number): FeatureName[] {
  return (Object.keys(FEATURE_BITS) as FeatureName[]).filter((n) => (bits & FEATURE_BITS[n]) !== 0);
}

/**
 * librbd's lock modes (rbd_lock_mode_t) by number. EXCLUSIVE_TRANSIENT (2) came after Pacific; a
 * value this list does not know is 'unknown', never another mode.
 */
export const LOCK_MODES = ['exclusive', 'shared', 'exclusive-transient'] as const;
export type LockMode = (typeof LOCK_MODES)[number] | 'unknown';
export const lockModeName = (n: number): LockMode => (Number.isInteger(n) && n >= 0 && n < LOCK_MODES.length ? LOCK_MODES[n] : 'unknown');
