// `npm run docs:check`: regenerates the API reference into a temp dir and fails if docs/api.md differs,
// so CI catches a public API change committed without `npm run docs:api`.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
const committed = new URL('../docs/api.md', import.meta.url);
const dir = mkdtempSync(join(tmpdir(), 'rbd-stream-api-'));
try {
  execFileSync('npx', ['typedoc', '--out', dir, '--logLevel', 'Warn'], { stdio: 'inherit', cwd: root });
  const fresh = readFileSync(join(dir, 'api.md'), 'utf8');
  const old = existsSync(committed) ? readFileSync(committed, 'utf8') : '';
  if (fresh !== old) {
    try {
      execFileSync('diff', ['-u', '--label', 'docs/api.md (committed)', '--label', 'docs/api.md (from lib/)', committed.pathname, join(dir, 'api.md')], { stdio: 'inherit' });
    } catch { /* diff exits 1 when the files differ: its output is the point */ }
    console.error('\ndocs/api.md is out of date with lib/: run `npm run docs:api` and commit docs/api.md.');
    process.exit(1);
  }
  console.log('docs/api.md is up to date.');
} finally {
  rmSync(dir, { recursive: true, force: true });
}
