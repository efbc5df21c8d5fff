// Tracks in-flight operations of one handle so close() can wait for them,
// and turns calls after close into clear rejections.
import { closedError } from './errors.js';

export class Lifecycle {
  // A count, not a set of promises: this sits on every read/write, and one shared settle
  // callback costs far less per op than a closure and a set entry.
  private inflight = 0;
  private drained: (() => void) | undefined;
  private readonly settled = () => {
    if (--this.inflight === 0 && this.drained) this.drained();
  };
  private closing: Promise<void> | undefined;
  private readonly children = new Set<{ close(): Promise<void> }>();
  private readonly closeHooks = new Set<() => void>();

  constructor(private readonly what: () => string) {}

  get closed(): boolean {
    return this.closing !== undefined;
  }

  ensureOpen(): void {
    if (this.closing) throw closedError(this.what());
  }

  /** Runs `start` if open and keeps its promise until settled. */
  run<T>(start: () => Promise<T>): Promise<T> {
    if (this.closing) return Promise.reject(closedError(this.what()));
    let p: Promise<T>;
    try {
      p = start();
    } catch (e) {
      return Promise.reject(e);
    }
    this.inflight++;
    p.then(this.settled, this.settled);
    return p;
  }

  adopt(child: { close(): Promise<void> }): void {
    this.children.add(child);
  }

  forget(child: { close(): Promise<void> }): void {
    this.children.delete(child);
  }

  /**
   * Runs `hook` when close() begins, before waiting for in-flight work: long
   * jobs (a copy) stop early instead of holding close() for their whole run.
   * Returns a function that removes the hook.
   */
  onClose(hook: () => void): () => void {
    this.closeHooks.add(hook);
    return () => this.closeHooks.delete(hook);
  }

  get inflightCount(): number {
    return this.inflight;
  }

  /** Marks closed, closes children, waits for in-flight ops, then runs `release` once. */
  close(release: () => Promise<void>): Promise<void> {
    if (!this.closing) {
      for (const hook of this.closeHooks) {
        try {
          hook();
        } catch {
          // a hook only requests a stop; close() goes on regardless
        }
      }
      this.closeHooks.clear();
      this.closing = (async () => {
        // Loop: an open that was in flight when close() began adopts its child afterwards,
        // which must be closed too (else it stays open and keeps the parent's handle alive).
        for (;;) {
          const kids = [...this.children];
          await Promise.allSettled(kids.map((c) => c.close()));
          for (const k of kids) this.children.delete(k);
          if (this.inflight === 0 && this.children.size === 0) break;
          if (this.inflight > 0) {
            await new Promise<void>((resolve) => { this.drained = resolve; });
            this.drained = undefined;
          }
        }
        await release();
      })();
    }
    return this.closing;
  }
}
