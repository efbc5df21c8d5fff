/** Running the ceph/rbd CLIs and other children with hard timeouts, isolated from the caller's Ceph env. */
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';

/** Every ceph/rbd CLI call is bounded by this process timeout (ms) unless told otherwise. */
const CMD_TIMEOUT = 60_000;
const CONNECT_TIMEOUT_S = 20;

export const noop = () => {};

export function sleep(ms: number) {
  return new Promise<void>((r) => setTimeout(r, ms));
}

/** Environment for every child: isolated from the caller's CEPH_ARGS / CEPH_CONF. */
export function childEnv(conf?: string): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  delete env.CEPH_ARGS;
  delete env.CEPH_CONF;
  if (conf) env.CEPH_CONF = conf;
  return env;
}

export interface RunResult { stdout: string; stderr: string }

/** Runs a command with a hard timeout (SIGKILL). Rejects with stderr in the message. */
export function run(
  cmd: string, args: string[], opts: { timeoutMs?: number; env?: NodeJS.ProcessEnv } = {},
): Promise<RunResult> {
  const timeout = opts.timeoutMs ?? CMD_TIMEOUT;
  return new Promise((res, rej) => {
    execFile(cmd, args, {
      timeout, killSignal: 'SIGKILL', maxBuffer: 64 << 20, env: opts.env ?? childEnv(), encoding: 'utf8',
    }, (err, stdout, stderr) => {
      if (err) {
        const e = err as NodeJS.ErrnoException & { killed?: boolean; code?: unknown; signal?: string };
        const why = e.killed ? `timed out after ${timeout} ms` : `exit ${e.code ?? e.signal}`;
        rej(new Error(`${cmd} ${args.join(' ')}: ${why}\n${String(stderr).trim()}`));
      } else {
        res({ stdout, stderr });
      }
    });
  });
}

/** `ceph` CLI against one cluster (admin), bounded by --connect-timeout and a process timeout. */
export function cephCmd(conf: string, args: string[], timeoutMs = CMD_TIMEOUT): Promise<RunResult> {
  const ct = Math.max(1, Math.min(CONNECT_TIMEOUT_S, Math.floor(timeoutMs / 1000) - 1));
  return run('ceph', ['-c', conf, '--connect-timeout', String(ct), ...args], { timeoutMs, env: childEnv(conf) });
}

/** `rbd` CLI against one cluster (admin), bounded by mount/op timeouts and a process timeout. */
export function rbdCmd(conf: string, args: string[], timeoutMs = CMD_TIMEOUT): Promise<RunResult> {
  const t = String(Math.max(1, Math.floor(timeoutMs / 1000)));
  return run('rbd', ['-c', conf, `--client_mount_timeout=${t}`, `--rados_mon_op_timeout=${t}`, ...args], {
    timeoutMs, env: childEnv(conf),
  });
}

/** Free TCP ports on 127.0.0.1 (held simultaneously while picking, so they are distinct). */
export async function freePorts(n: number): Promise<number[]> {
  const servers = await Promise.all(Array.from({ length: n }, () => new Promise<ReturnType<typeof createServer>>(
    (res, rej) => {
      const s = createServer();
      s.once('error', rej);
      s.listen(0, '127.0.0.1', () => res(s));
    },
  )));
  const ports = servers.map((s) => (s.address() as { port: number }).port);
  await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  return ports;
}

export function tail(path: string, lines = 15): string {
  try {
    return readFileSync(path, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '';
  }
}
