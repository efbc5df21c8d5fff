// The rbd-stream CLI on a pseudo-terminal, for the commands that ask the operator (failback).
import { spawn } from 'node:child_process';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** The CLI on a pseudo-terminal (util-linux `script`), answering `answer` when asked; the terminal's output. */
export function onTerminal(args: string[], answer: string): Promise<{ code: number | null; out: string }> {
  const env = { ...process.env };
  delete env.CEPH_ARGS;
  delete env.CEPH_CONF;
  const q = (x: string) => `'${x.replace(/'/g, `'\\''`)}'`;
  const cmd = [process.execPath, '--import', 'tsx', join(ROOT, 'lib/cli/main.ts'), '--no-progress', ...args].map(q).join(' ');
  const child = spawn('script', ['-qec', cmd, '/dev/null'], { cwd: ROOT, env, stdio: ['pipe', 'pipe', 'pipe'] });
  child.stdin.on('error', () => {});
  const out: Buffer[] = [];
  let answered = false;
  child.stdout.on('data', (d: Buffer) => {
    out.push(d);
    // Typed once the question is on the terminal, as an operator would.
    if (!answered && Buffer.concat(out).toString().includes("type 'yes'")) {
      answered = true;
      child.stdin.write(`${answer}\r`);
    }
  });
  return new Promise((res, rej) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), 90_000);
    child.on('error', rej);
    child.on('close', (code) => {
      clearTimeout(timer);
      child.stdin.end();
      res({ code, out: Buffer.concat(out).toString() });
    });
  });
}
