// Pure test helpers (no addon: the unit tier imports them too).

/** Splits `buf` at the given cut positions (taken modulo its length + 1, deduplicated). */
export function chunk(buf: Buffer, cuts: number[]): Buffer[] {
  const pos = [...new Set(cuts.map((c) => c % (buf.length + 1)))].sort((x, y) => x - y);
  const out: Buffer[] = [];
  let p = 0;
  for (const c of pos) { out.push(buf.subarray(p, c)); p = c; }
  out.push(buf.subarray(p));
  return out;
}
