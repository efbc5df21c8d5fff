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
 * Method (Image): sets and removes metadata records in one op on the header, sent ahead of the
 * handle's next snapshot create or close, which RADOS applies after it; settles with its reply.
 */
export const kSendRecords: unique symbol = Symbol('rbd-stream.sendRecords');
