// Runs the rbd-stream CLI (from source, via tsx) as a child process, for end-to-end CLI tests.
import { spawn } from 'node:child_process';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { TestCluster } from './clusters.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

export interface CliRun { code: number | null; stdout: string; stderr: string }

/** `rbd-stream ...args`; stdin is an ended pipe, never a TTY (the command cannot ask). Killed after timeoutMs. */
export function runRbdStream(args: string[], timeoutMs = 90_000): Promise<CliRun> {
  const env = { ...process.env };
  delete env.CEPH_ARGS;
  delete env.CEPH_CONF;
  const child = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'lib/cli/main.ts'), ...args], { cwd: ROOT, env, stdio: ['pipe', 'pipe', 'pipe'] });
  child.stdin.end();
  return new Promise((res, rej) => {
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.stdout.on('data', (d: Buffer) => out.push(d));
    child.stderr.on('data', (d: Buffer) => err.push(d));
    child.on('error', rej);
    child.on('close', (code) => {
      clearTimeout(timer);
      res({ code, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString() });
    });
  });
}

/** The destination cluster flags for `c` (sync, sync-pool, sync-group, failback). */
export const destArgs = (c: TestCluster): string[] =>
  ['--dest-conf', c.conf, ...(c.user ? ['--dest-id', c.user] : []), ...(c.keyring ? ['--dest-keyring', c.keyring] : [])];
