// Error shapes shared by every class (argument checks: validate.ts).

/** Errors from librbd/librados carry these fields. */
export interface RbdError extends Error {
  /** errno name, e.g. 'ENOENT', 'EEXIST', 'EROFS'. */
  code: string;
  /** Negative errno, as in Node's system errors. */
  errno: number;
  operation: string;
  pool?: string;
  namespace?: string;
  image?: string;
  snapshot?: string;
}

export function isRbdError(e: unknown, code?: string): e is RbdError {
  return e instanceof Error && typeof (e as RbdError).code === 'string' && (code === undefined || (e as RbdError).code === code);
}

/** A coded Error for failures found on the JS side (same shape as native ones). */
export function codedError(code: string, message: string, extra: Record<string, unknown> = {}): Error & { code: string } {
  const e = new Error(`${code}: ${message}`) as Error & { code: string };
  e.code = code;
  Object.assign(e, extra);
  return e;
}

export function closedError(what: string): Error & { code: string } {
  return codedError('ERR_CLOSED', `${what} is closed`);
}
