// Module-private members of the handle classes (Rados, Pool, Image). Symbol keys keep
// them out of the public API and its docs; other lib/ modules import the symbols.

/** Getter: the native handle (throws ERR_CLOSED once closed). */
export const kHandle: unique symbol = Symbol('rbd-stream.handle');
/** Method: runs a native call tracked so close() waits for it. */
export const kTrack: unique symbol = Symbol('rbd-stream.track');
/** Method: runs a hook when close() begins; returns its remover. */
export const kOnClose: unique symbol = Symbol('rbd-stream.onClose');
/** Method: a child handle tells its parent it has closed. */
export const kForget: unique symbol = Symbol('rbd-stream.forget');
/**
 * Method (Image): close(), with metadata records set and removed in one op sent just before the
 * close, applied before its lock release (in order on the header); rejects if they fail.
 */
export const kCloseWithRecords: unique symbol = Symbol('rbd-stream.closeWithRecords');
