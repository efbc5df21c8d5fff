// Runs the rbd-stream CLI (from source, via tsx) as a child process, for end-to-end CLI tests.
import { spawn, type ChildProcess } from 'node:child_process';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { TestCluster } from './clusters.js';

/** The project root (the CLI runs with it as its working directory). */
export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
/** Node arguments that run the CLI from source; append the CLI's own. */
export const CLI_NODE_ARGS = ['--import', 'tsx', join(ROOT, 'lib/cli/main.ts')];

export interface CliRun { code: number | null; stdout: string; stderr: string }

/** The environment minus CEPH_ARGS/CEPH_CONF: each test names its cluster explicitly. */
export function cliEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  delete env.CEPH_ARGS;
  delete env.CEPH_CONF;
  return env;
}

/** Collects a child's stdout, stderr and exit code; kills it after timeoutMs. */
export function collectChild(child: ChildProcess, timeoutMs = 90_000): Promise<CliRun> {
  return new Promise((res, rej) => {
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.stdout?.on('data', (d: Buffer) => out.push(d));
    child.stderr?.on('data', (d: Buffer) => err.push(d));
    child.on('error', rej);
    child.on('close', (code) => {
      clearTimeout(timer);
      res({ code, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString() });
    });
  });
}

/**
 * `rbd-stream ...args`; stdin is a pipe given `input` and then ended, never a TTY (the command cannot
 * ask). Killed after timeoutMs.
 */
export function runRbdStream(args: string[], timeoutMs = 90_000, input?: Buffer | string): Promise<CliRun> {
  const child = spawn(process.execPath, [...CLI_NODE_ARGS, ...args], { cwd: ROOT, env: cliEnv(), stdio: ['pipe', 'pipe', 'pipe'] });
  child.stdin.on('error', () => {}); // the CLI may exit before reading its input
  child.stdin.end(input);
  return collectChild(child, timeoutMs);
}

/** The destination cluster flags for `c` (sync, sync-pool, sync-group, failback). */
export const destArgs = (c: TestCluster): string[] =>
  ['--dest-conf', c.conf, ...(c.user ? ['--dest-id', c.user] : []), ...(c.keyring ? ['--dest-keyring', c.keyring] : [])];
