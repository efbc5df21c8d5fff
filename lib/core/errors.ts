// RbdError: the one error class for what librbd/librados reject (built by the addon through the
// factory lib/binding registers) and for the failures this library finds itself (codedError).
// Argument checks throw TypeError/RangeError instead (validate.ts).

/**
 * Every code an RbdError can carry, with its errno for the errno names (Linux numbers, named as
 * glibc's strerrorname_np names them: EAGAIN not EWOULDBLOCK, EOPNOTSUPP not ENOTSUP) and `null`
 * for the library's own codes. The addon passes bare errnos; the name comes from here only.
 */
const ERROR_CODES = {
  EPERM: 1, ENOENT: 2, ESRCH: 3, EINTR: 4, EIO: 5, ENXIO: 6, E2BIG: 7, ENOEXEC: 8, EBADF: 9, ECHILD: 10,
  EAGAIN: 11, ENOMEM: 12, EACCES: 13, EFAULT: 14, ENOTBLK: 15, EBUSY: 16, EEXIST: 17, EXDEV: 18, ENODEV: 19,
  ENOTDIR: 20, EISDIR: 21, EINVAL: 22, ENFILE: 23, EMFILE: 24, ENOTTY: 25, ETXTBSY: 26, EFBIG: 27, ENOSPC: 28,
  ESPIPE: 29, EROFS: 30, EMLINK: 31, EPIPE: 32, EDOM: 33, ERANGE: 34, EDEADLK: 35, ENAMETOOLONG: 36, ENOLCK: 37,
  ENOSYS: 38, ENOTEMPTY: 39, ELOOP: 40, ENOMSG: 42, EIDRM: 43, ECHRNG: 44, EL2NSYNC: 45, EL3HLT: 46, EL3RST: 47,
  ELNRNG: 48, EUNATCH: 49, ENOCSI: 50, EL2HLT: 51, EBADE: 52, EBADR: 53, EXFULL: 54, ENOANO: 55, EBADRQC: 56,
  EBADSLT: 57, EBFONT: 59, ENOSTR: 60, ENODATA: 61, ETIME: 62, ENOSR: 63, ENONET: 64, ENOPKG: 65, EREMOTE: 66,
  ENOLINK: 67, EADV: 68, ESRMNT: 69, ECOMM: 70, EPROTO: 71, EMULTIHOP: 72, EDOTDOT: 73, EBADMSG: 74,
  EOVERFLOW: 75, ENOTUNIQ: 76, EBADFD: 77, EREMCHG: 78, ELIBACC: 79, ELIBBAD: 80, ELIBSCN: 81, ELIBMAX: 82,
  ELIBEXEC: 83, EILSEQ: 84, ERESTART: 85, ESTRPIPE: 86, EUSERS: 87, ENOTSOCK: 88, EDESTADDRREQ: 89,
  EMSGSIZE: 90, EPROTOTYPE: 91, ENOPROTOOPT: 92, EPROTONOSUPPORT: 93, ESOCKTNOSUPPORT: 94, EOPNOTSUPP: 95,
  EPFNOSUPPORT: 96, EAFNOSUPPORT: 97, EADDRINUSE: 98, EADDRNOTAVAIL: 99, ENETDOWN: 100, ENETUNREACH: 101,
  ENETRESET: 102, ECONNABORTED: 103, ECONNRESET: 104, ENOBUFS: 105, EISCONN: 106, ENOTCONN: 107,
  ESHUTDOWN: 108, ETOOMANYREFS: 109, ETIMEDOUT: 110, ECONNREFUSED: 111, EHOSTDOWN: 112, EHOSTUNREACH: 113,
  EALREADY: 114, EINPROGRESS: 115, ESTALE: 116, EUCLEAN: 117, ENOTNAM: 118, ENAVAIL: 119, EISNAM: 120,
  EREMOTEIO: 121, EDQUOT: 122, ENOMEDIUM: 123, EMEDIUMTYPE: 124, ECANCELED: 125, ENOKEY: 126,
  EKEYEXPIRED: 127, EKEYREVOKED: 128, EKEYREJECTED: 129, EOWNERDEAD: 130, ENOTRECOVERABLE: 131,
  ERFKILL: 132, EHWPOISON: 133,
  /** A handle (connection, pool, image) was used after close(). */
  ERR_CLOSED: null,
  /**
   * The running librbd lacks a call this needs (errno -95, as EOPNOTSUPP; that code stays for what
   * librbd or the cluster itself rejects), e.g. a diff from a snapshot id before Reef 18.2.5.
   */
  ENOTSUP: null,
  /** The operation was aborted through its AbortSignal (Node's code for that). */
  ABORT_ERR: null,
  /** Diff stream: not an rbd diff banner. */
  ERR_DIFF_BANNER: null,
  /** Diff stream: a record that cannot be right (bad length, out of order). */
  ERR_DIFF_CORRUPT: null,
  /** Diff stream: an extent past the image size. */
  ERR_DIFF_RANGE: null,
  /** Diff stream: ended before its end record. */
  ERR_DIFF_TRUNCATED: null,
  /** Diff stream: a record tag this format does not have. */
  ERR_DIFF_UNKNOWN_TAG: null,
  /**
   * A mgr command's module is not running (the mgr answers "No handler found"), e.g. mirror snapshot
   * schedules without the rbd_support module (Debian trixie's Reef mgr cannot load it).
   */
  ERR_MGR_MODULE_UNAVAILABLE: null,
  /** syncImage: source and target share no snapshot to start an incremental copy from. */
  ERR_NO_COMMON_SNAPSHOT: null,
  /** replicate: the target's head changed since its base snapshot (pass force). */
  ERR_TARGET_CHANGED: null,
  /** replicate verify: the target's data differs from the source's. */
  ERR_VERIFY_MISMATCH: null,
  /** replicate: the target's base snapshot is not a copy of the source's. */
  ERR_WRONG_BASE: null,
  /** replicate: diffFromSnapshot (the anchor) was taken after the base. */
  ERR_ANCHOR_AFTER_BASE: null,
  /** syncGroup: two source members (different pools or namespaces) would become the same target image. */
  ERR_MEMBER_COLLISION: null,
  /** CLI: bad command line. */
  ERR_USAGE: null,
  /** CLI and sync results: a failure that carried no code. */
  ERR_UNKNOWN: null,
} as const;

/** An errno this build's table does not name (librbd returns none such): `E<number>`, as before. */
type UnnamedErrnoCode = `E${number}`;

/** The code of an RbdError: an errno name ('ENOENT', 'EEXIST', …) or one of the library's 'ERR_*' codes. */
export type RbdErrorCode = keyof typeof ERROR_CODES | UnnamedErrnoCode;

const ERRNO_NAMES = new Map<number, RbdErrorCode>();
for (const [name, errno] of Object.entries(ERROR_CODES)) if (errno !== null) ERRNO_NAMES.set(errno, name as RbdErrorCode);

/** The code for an errno (either sign): 'ENOENT' for -2. */
export function errnoCode(errno: number): RbdErrorCode {
  const n = Math.abs(errno);
  return ERRNO_NAMES.get(n) ?? `E${n}`;
}

/** Fields an RbdError may carry besides its code. */
export interface RbdErrorFields {
  /** Negative errno, as in Node's system errors (errors from librbd/librados, and JS ones that mirror them). */
  errno?: number;
  /** What was being done, e.g. 'open image'. */
  operation?: string;
  pool?: string;
  namespace?: string;
  image?: string;
  snapshot?: string;
  /** Consistency group operations: the group's name (pool: the group's pool). */
  group?: string;
  /** mon/mgr command: the cluster's status text. */
  status?: string;
  /** replicate verify: the first byte offset that differs. */
  offset?: number;
  /** Diff stream: the stream byte where parsing failed. */
  position?: number;
  /** failover/failback: the step that failed. */
  step?: string;
  cause?: unknown;
}

export class RbdError extends Error implements RbdErrorFields {
  code: RbdErrorCode;
  // `declare`: unset fields stay absent (not own properties holding undefined), as on the
  // plain errors this class replaced.
  declare errno?: number;
  declare operation?: string;
  declare pool?: string;
  declare namespace?: string;
  declare image?: string;
  declare snapshot?: string;
  declare group?: string;
  declare status?: string;
  declare offset?: number;
  declare position?: number;
  declare step?: string;

  /** `message` is the whole message (codedError and the addon prefix it with the code). */
  constructor(code: RbdErrorCode, message: string, fields: RbdErrorFields = {}) {
    super(message, fields.cause === undefined ? undefined : { cause: fields.cause });
    this.code = code;
    for (const [k, v] of Object.entries(fields)) if (v !== undefined && k !== 'cause') (this as Record<string, unknown>)[k] = v;
  }
}
RbdError.prototype.name = 'RbdError';

export function isRbdError(e: unknown, code?: RbdErrorCode): e is RbdError {
  return e instanceof RbdError && (code === undefined || e.code === code);
}

/** An RbdError for a failure found on the JS side (same shape as native ones): message `${code}: ${message}`. */
export function codedError(code: RbdErrorCode, message: string, extra: RbdErrorFields = {}): RbdError {
  return new RbdError(code, `${code}: ${message}`, extra);
}

export function closedError(what: string): RbdError {
  return codedError('ERR_CLOSED', `${what} is closed`);
}
