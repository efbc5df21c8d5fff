// fixtures/replicate-child.ts started as its own process, for the tests that kill a copy mid-way.
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const FIXTURE = fileURLToPath(new URL('./fixtures/replicate-child.ts', import.meta.url));

export interface ReplicateChild {
  process: ChildProcess;
  /** Its stderr so far (for failure messages). */
  stderr(): string;
  /** Settles when it has exited. */
  exited: Promise<void>;
}

/** Starts the fixture with these CHILD_* variables (the fixture says what each means). */
export function startReplicateChild(vars: Record<string, string>): ReplicateChild {
  const child = spawn(process.execPath, ['--import', 'tsx', FIXTURE], { env: { ...process.env, ...vars }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (d) => (stderr += d));
  const exited = new Promise<void>((r) => child.on('exit', () => r()));
  return { process: child, stderr: () => stderr, exited };
}
