#!/usr/bin/env node
// rbd-stream: command-line interface.
//
// Exit codes:
//   0    success
//   1    failure (I/O, cluster, unexpected errors)
//   2    usage error (bad arguments, bad image spec)
//   3    sync-pool, failback --pool: at least one image failed (the others were synced)
//   4    refused by a safety check: ENOENT (missing image/snapshot), EEXIST (to-snapshot exists),
//        ERR_WRONG_BASE, ERR_TARGET_CHANGED, ERR_NO_COMMON_SNAPSHOT, EBUSY, ERR_MEMBER_COLLISION (sync-group), and failback's
//        ERR_WRITERS_NOT_STOPPED (no --writers-stopped and no terminal to ask on: nothing done)
//   5    invalid diff stream (ERR_DIFF_*: bad banner, truncated, unknown tag, out of range, corrupt)
//   130  interrupted (SIGINT/SIGTERM)
//
// --json prints one JSON document on stdout (on stderr when stdout carries a diff stream);
// failures print { "error": { "code", "message" } } there. Progress bars go to stderr, only on a TTY.
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command, CommanderError } from 'commander';
import { controller, EXIT } from './action.js';
import { registerSync } from './commands/sync.js';
import { registerSyncPool } from './commands/sync-pool.js';
import { registerSyncGroup } from './commands/sync-group.js';
import { registerExportDiff } from './commands/export-diff.js';
import { registerImportDiff } from './commands/import-diff.js';
import { registerDiff } from './commands/diff.js';
import { registerInspect } from './commands/inspect.js';
import { registerMirror } from './commands/mirror.js';
import { registerFailback } from './commands/failback.js';
import { registerFailover } from './commands/failover.js';

export { EXIT } from './action.js';
export { parseImageSpec, type ImageSpec } from './options.js';
export { formatBytes } from './output.js';

export function buildProgram(opts: { json?: boolean } = {}): Command {
  const program = new Command('rbd-stream')
    .description('Ceph RBD replication: snapshot sync between clusters, rbd diff streams, mirroring status')
    .version('0.1.0')
    .option('--json', 'machine-readable output (one JSON document)')
    .option('--no-progress', 'no progress bar (it is only shown on a TTY anyway)')
    .option('--progress-json', 'progress as JSON lines on stderr, TTY or not (for supervisors)')
    .showHelpAfterError()
    .exitOverride();
  // --json: a usage error is one JSON document on stderr (main writes it), not commander's text.
  if (opts.json) program.configureOutput({ writeErr: () => undefined, outputError: () => undefined });
  program.addHelpText('after', `
Exit codes: 0 ok, 1 failed, 2 usage, 3 sync-pool partial failure, 4 refused by a safety check
(ENOENT, EEXIST, ERR_WRONG_BASE, ERR_TARGET_CHANGED, ERR_NO_COMMON_SNAPSHOT, EBUSY,
ERR_WRITERS_NOT_STOPPED, ERR_MEMBER_COLLISION),
5 invalid diff stream (ERR_DIFF_*), 130 interrupted.`);

  registerSync(program);
  registerSyncPool(program);
  registerSyncGroup(program);
  registerFailover(program);
  registerFailback(program);
  registerExportDiff(program);
  registerImportDiff(program);
  registerDiff(program);
  registerInspect(program);
  registerMirror(program);
  return program;
}

export async function main(argv: string[] = process.argv): Promise<number> {
  // Known before parsing: a parse error must already come out as JSON.
  const json = argv.slice(2).includes('--json');
  const program = buildProgram({ json });
  const onSignal = () => controller.abort();
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    await program.parseAsync(argv);
  } catch (e) {
    if (e instanceof CommanderError) {
      if (e.code === 'commander.helpDisplayed' || e.code === 'commander.version' || e.code === 'commander.help') return EXIT.OK;
      if (json) process.stderr.write(`${JSON.stringify({ error: { code: 'ERR_USAGE', message: e.message.replace(/^error: /, '') } })}\n`);
      return EXIT.USAGE;
    }
    throw e;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
  return Number(process.exitCode ?? 0);
}

// Run when executed (bin, `node dist/cli/main.js`, `tsx lib/cli/main.ts`), not when imported.
const self = fileURLToPath(import.meta.url);
if (process.argv[1] && resolve(process.argv[1]).replace(/\.[cm]?[jt]s$/, '') === self.replace(/\.[cm]?[jt]s$/, '')) {
  main().then(
    (code) => {
      // librados keeps no handles open after close, but never hang on a stray one.
      process.stdout.write('', () => process.exit(code));
    },
    (e) => {
      process.stderr.write(`rbd-stream: ${(e as Error).stack ?? e}\n`);
      process.exit(EXIT.FAILED);
    },
  );
}
