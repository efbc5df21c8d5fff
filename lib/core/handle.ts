// What Rados, Pool and Image share: one native handle, calls tracked so close() can wait for
// them, and a close() that runs once. Subclasses say how to release their handle.
import { Lifecycle } from './lifecycle.js';
import { kHandle, kTrack } from './internal.js';

export abstract class NativeHandle<H> {
  /** @internal */
  protected readonly life: Lifecycle;
  #handle: H | undefined;

  /** @hidden */
  protected constructor(handle: H, what: () => string) {
    this.#handle = handle;
    this.life = new Lifecycle(what);
  }

  /** @internal The native handle; throws ERR_CLOSED once closed. */
  get [kHandle](): H {
    this.life.ensureOpen();
    return this.#handle!;
  }

  /** @internal Runs a native call tracked for close(). */
  [kTrack]<T>(start: () => Promise<T>): Promise<T> {
    return this.life.run(start);
  }

  get closed(): boolean {
    return this.life.closed;
  }

  /** @internal Frees the native handle, once, after children closed and in-flight calls settled. */
  protected abstract release(handle: H): Promise<void>;

  /**
   * Closes what was opened from this handle, waits for its in-flight operations, then frees it.
   * Idempotent; later calls on the handle reject with code ERR_CLOSED.
   */
  close(): Promise<void> {
    return this.life.close(async () => {
      const h = this.#handle!;
      this.#handle = undefined;
      await this.release(h);
    });
  }

  /** Same as close(): `await using` closes the handle at the end of its block. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}
