// Runs one command's action: the connections it opens, the exit code it ends with, and the
// error report (text on stderr, or { error } with --json). Kept apart from main.ts so the
// command files can use it without importing the entry point that registers them.
import type { Command } from 'commander';
import { Rados } from '../core/rados.js';
import { connectOptions, UsageError, type ClusterFlags, type GlobalOpts } from './options.js';
import { emitJson, jsonOutput } from './output.js';

export const EXIT = { OK: 0, FAILED: 1, USAGE: 2, PARTIAL: 3, REFUSED: 4, BAD_STREAM: 5, INTERRUPTED: 130 } as const;
const REFUSALS = new Set(['ENOENT', 'EEXIST', 'ERR_WRONG_BASE', 'ERR_TARGET_CHANGED', 'ERR_NO_COMMON_SNAPSHOT', 'EBUSY', 'ERR_WRITERS_NOT_STOPPED', 'ERR_MEMBER_COLLISION', 'ERR_SPLIT_BRAIN', 'ERR_NOT_PRIMARY']);

/** Connections opened by a command; all closed when it ends. */
class Session {
  private readonly open: Rados[] = [];
  async connect(f: ClusterFlags): Promise<Rados> {
    const r = await Rados.connect(connectOptions(f));
    this.open.push(r);
    return r;
  }
  async close(): Promise<void> {
    await Promise.allSettled(this.open.map((r) => r.close()));
  }
}

export const controller = new AbortController();

type Action = (session: Session, g: GlobalOpts, ...args: never[]) => Promise<number | void>;

export function run(fn: Action) {
  return async (...args: unknown[]) => {
    const cmd = args[args.length - 1] as Command;
    const g = cmd.optsWithGlobals() as GlobalOpts;
    const session = new Session();
    let code: number = EXIT.OK;
    try {
      code = (await fn(session, g, ...(args.slice(0, -1) as never[]))) ?? EXIT.OK;
    } catch (e) {
      code = reportError(e, g);
    } finally {
      await session.close();
    }
    process.exitCode = code;
  };
}

function exitCodeOf(e: unknown): number {
  const err = e as { code?: string; name?: string };
  if (controller.signal.aborted || err.name === 'AbortError' || err.code === 'ABORT_ERR') return EXIT.INTERRUPTED;
  if (e instanceof UsageError || e instanceof TypeError || e instanceof RangeError) return EXIT.USAGE;
  if (typeof err.code === 'string' && err.code.startsWith('ERR_DIFF_')) return EXIT.BAD_STREAM;
  if (typeof err.code === 'string' && REFUSALS.has(err.code)) return EXIT.REFUSED;
  return EXIT.FAILED;
}

function reportError(e: unknown, g: GlobalOpts): number {
  const code = exitCodeOf(e);
  const err = e as { code?: string; message?: string };
  const message = String(err.message ?? e);
  const errCode = code === EXIT.INTERRUPTED ? 'ABORT_ERR' : err.code ?? (code === EXIT.USAGE ? 'ERR_USAGE' : 'ERR_UNKNOWN');
  if (g.json) emitJson({ error: { code: errCode, message } }, jsonOutput.sink);
  else process.stderr.write(`rbd-stream: ${message}\n`);
  return code;
}
