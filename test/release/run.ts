/**
 * npm run test:release -- <pacific|reef|tentacle> [--client host|chroot|cross|pair|pair-reverse] [--out F] [vitest args / test files...]
 *
 * Runs the integration suite against two clusters of one Ceph release (tools/cluster `up --release`,
 * with rbd-mirror daemons), started here and stopped here even on failure (a watchdog covers a
 * killed runner). Client arrangements:
 *   host   (default) the host-built addon (build/Release, snapshotted for the run) loaded by the
 *          chroot's node, so it links that release's librbd.so.1; vitest and the `rbd` CLI oracle
 *          run in the chroot too.
 *   chroot the addon rebuilt inside the chroot against that release's headers, in
 *          /var/cache/rbd-stream/builds/<release> (loaded through RBD_STREAM_ADDON).
 *   cross  host node, host addon, host librbd and host CLI against that release's daemons; test
 *          files that start clusters of their own get that release too (RBD_STREAM_RELEASE).
 *   pair   a cross-version pair: cluster a on the host's release (Pacific), b on the given one,
 *          each with its own release's rbd-mirror; host client as in cross. By default only the
 *          files that move data between a and b run (replicate, sync, mirror, diffstream, cli):
 *          replicate+verify, syncImage, rbd-mirror snapshot (and journal) mode both directions,
 *          checked by `rbd export | md5`.
 *   pair-reverse  the same with the releases swapped (a on the given release, b on the host's).
 * In the chroot arrangements the repo is bind-mounted at the same path (release.ts: a private
 * mount namespace, nothing mounted on the host), and files that start their own clusters run the
 * chroot's daemons directly. Prints a summary and writes vitest's JSON report to --out.
 */
import { spawn, spawnSync } from 'node:child_process';
import { copyFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, statSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { down, envExports, inRoot, parseRelease, releaseRoot, spawnWatchdog, up, type Bind, type Release } from '../../tools/cluster/index.js';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const BUILDS = process.env.RBD_STREAM_RELEASE_BUILDS || '/var/cache/rbd-stream/builds';
type Client = 'host' | 'chroot' | 'cross' | 'pair' | 'pair-reverse';
const CLIENTS: readonly Client[] = ['host', 'chroot', 'cross', 'pair', 'pair-reverse'];
/** Host node, addon and CLI (no chroot on the client side). */
const hostSide = (c: Client) => c === 'cross' || c === 'pair' || c === 'pair-reverse';
/** What a pair arrangement runs unless test files are given. */
const PAIR_FILES = ['replicate', 'sync', 'mirror', 'diffstream', 'cli'].map((f) => `test/integration/${f}.test.ts`);
const log = (s: string) => process.stderr.write(`[test:release] ${s}\n`);

function parseArgs(argv: string[]) {
  const o: { release?: Release; client: Client; out?: string; vitest: string[] } = { client: 'host', vitest: [] };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const val = () => (a.includes('=') ? a.slice(a.indexOf('=') + 1) : argv[++i]);
    const key = a.split('=')[0];
    if (key === '--client') {
      const c = val();
      if (!(CLIENTS as readonly string[]).includes(c)) throw new Error(`--client ${CLIENTS.join('|')}, got ${c}`);
      o.client = c as Client;
    } else if (key === '--out') {
      o.out = resolve(val());
    } else if (!o.release && !a.startsWith('-')) {
      o.release = parseRelease(a);
      if (!o.release) throw new Error('give a release other than host: pacific, reef or tentacle (plain `npm test` runs the host release)');
    } else {
      o.vitest.push(a);
    }
  }
  if (!o.release) throw new Error('usage: npm run test:release -- <pacific|reef|tentacle> [--client host|chroot|cross] [--out F] [vitest args...]');
  return o as typeof o & { release: Release };
}

/** The chroot's node major version (vitest needs 20+; bookworm's is 18). */
function chrootNodeMajor(root: string): number {
  const r = spawnSync('chroot', [root, 'node', '-p', 'process.versions.node'], { encoding: 'utf8' });
  return Number.parseInt(r.stdout ?? '', 10);
}

const newest = (files: string[]) => Math.max(...files.map((f) => statSync(f).mtimeMs));
function sources(dir: string): string[] {
  return [join(dir, 'binding.gyp'), ...readdirSync(join(dir, 'native'), { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile()).map((e) => join(e.parentPath, e.name))];
}

/** Builds the addon inside the chroot (node-gyp with the chroot's node, headers and librbd) unless current. */
function buildInChroot(release: Release, root: string): string {
  const dir = join(BUILDS, release);
  const addon = join(dir, 'build', 'Release', 'rbd_stream.node');
  mkdirSync(dir, { recursive: true });
  rmSync(join(dir, 'native'), { recursive: true, force: true });
  cpSync(join(REPO, 'native'), join(dir, 'native'), { recursive: true, preserveTimestamps: true });
  copyFileSync(join(REPO, 'binding.gyp'), join(dir, 'binding.gyp'));
  cpSync(join(REPO, 'package.json'), join(dir, 'package.json'));
  // This checkout's node_modules (node-gyp): a link another checkout left (perhaps removed since, so
  // existsSync calls it absent while symlinkSync meets it) is replaced.
  const nm = join(dir, 'node_modules');
  let linked: string | undefined;
  try { linked = readlinkSync(nm); } catch { /* absent, or not a link */ }
  if (linked !== join(REPO, 'node_modules')) {
    rmSync(nm, { recursive: true, force: true });
    symlinkSync(join(REPO, 'node_modules'), nm, 'dir');
  }
  // Copied files carry their own mtimes, so a changed source (or binding.gyp) is newer than the build.
  if (existsSync(addon) && statSync(addon).mtimeMs >= newest([...sources(REPO), join(REPO, 'binding.gyp')])) {
    log(`addon for ${release} is current: ${addon}`);
    return dir;
  }
  log(`building the addon inside the ${release} chroot in ${dir}`);
  const t0 = Date.now();
  const [file, args] = inRoot(root, 'node', [join(REPO, 'node_modules/node-gyp/bin/node-gyp.js'), 'rebuild', '-j', '2', '--nodedir=/usr'],
    { binds: [{ src: REPO }, { src: dir }], cwd: dir });
  const r = spawnSync(file, args, { stdio: ['ignore', 2, 2], env: { ...process.env, HOME: '/root' } });
  if (r.status !== 0) throw new Error(`building the addon in the ${release} chroot failed (exit ${r.status ?? r.signal})`);
  log(`built in ${((Date.now() - t0) / 1000).toFixed(0)} s`);
  return dir;
}

/**
 * Packs the package on the host (prepack: dist/ and the prebuild against the host's Pacific headers), for
 * test/integration/prebuild.test.ts inside the chroot: it installs that tarball, so the release's node and
 * librbd.so.1 load the Pacific-built binary. Its dependencies come from the registry with a cache in `dir`
 * (not the cached chroot's /root/.npm) and the host's CA bundle (a TLS-intercepting proxy's CA is known only
 * to the host). Returns the env the test reads.
 */
function packForRelease(dir: string): Record<string, string> {
  const packed = join(dir, 'packed');
  mkdirSync(packed, { recursive: true });
  const t0 = Date.now();
  const p = spawnSync('npm', ['pack', '--json', '--pack-destination', packed], { cwd: REPO, encoding: 'utf8', stdio: ['ignore', 'pipe', 2] });
  if (p.status !== 0) throw new Error(`npm pack failed (exit ${p.status ?? p.signal})`);
  const tarball = join(packed, (JSON.parse(p.stdout.slice(p.stdout.indexOf('['))) as { filename: string }[])[0].filename);
  log(`packed ${tarball} (${statSync(tarball).size} bytes) in ${((Date.now() - t0) / 1000).toFixed(0)} s`);
  const env: Record<string, string> = { RBD_STREAM_PACKED: tarball, RBD_STREAM_NPM_CACHE: join(dir, 'npm-cache') };
  const ca = process.env.NODE_EXTRA_CA_CERTS || '/etc/ssl/certs/ca-certificates.crt';
  if (existsSync(ca)) {
    copyFileSync(ca, join(dir, 'ca.crt'));
    env.NODE_EXTRA_CA_CERTS = env.npm_config_cafile = join(dir, 'ca.crt');
  }
  return env;
}

interface JsonReport {
  numTotalTests: number; numPassedTests: number; numFailedTests: number; numPendingTests: number; numTodoTests: number;
  testResults: { name: string; assertionResults: { fullName: string; status: string; failureMessages?: string[] }[] }[];
}

function summarize(path: string, meta: Record<string, unknown>): string {
  if (!existsSync(path)) return 'no JSON report (vitest did not finish)';
  const r = JSON.parse(readFileSync(path, 'utf8')) as JsonReport;
  const lines = [`${JSON.stringify(meta)}`,
    `tests ${r.numTotalTests}: passed ${r.numPassedTests}, failed ${r.numFailedTests}, skipped ${r.numPendingTests}, todo ${r.numTodoTests}`];
  for (const f of r.testResults) {
    for (const t of f.assertionResults) {
      if (t.status !== 'failed') continue;
      const why = (t.failureMessages?.[0] ?? '').split('\n').find((l) => l.trim()) ?? '';
      lines.push(`  FAIL ${f.name.replace(`${REPO}/`, '')} > ${t.fullName}\n       ${why.trim().slice(0, 300)}`);
    }
  }
  return lines.join('\n');
}

async function main() {
  const o = parseArgs(process.argv.slice(2));
  const t0 = Date.now();
  const root = releaseRoot(o.release);
  if (!hostSide(o.client)) {
    const major = chrootNodeMajor(root);
    if (!(major >= 20)) {
      throw new Error(`the ${o.release} chroot has Node ${major} (vitest and this package need 20+): use --client cross` +
        (o.release === 'pacific' ? ' (or plain `npm test`: the host is Pacific)' : ''));
    }
  }
  const setDir = mkdtempSync(join(tmpdir(), `rbd-stream-release-${o.release}-`));
  const clustersDir = join(setDir, 'clusters');
  mkdirSync(clustersDir);
  const watchdog = spawnWatchdog(clustersDir, process.pid);
  let child: ReturnType<typeof spawn> | undefined;
  const onSignal = (sig: NodeJS.Signals) => { log(`${sig}: stopping`); child?.kill(sig); };
  for (const s of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(s, onSignal);
  const out = o.out ?? join(tmpdir(), 'rbd-stream-release-results',
    `${o.release}-${o.client}-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
  mkdirSync(dirname(out), { recursive: true });
  let code = 1;
  try {
    // Build (or check) the chroot addon first: no cluster sits idle meanwhile.
    const binds: Bind[] = [{ src: REPO }, { src: setDir }];
    // The addon every test process loads, named by RBD_STREAM_ADDON and kept outside the worktree:
    // a bind mount over <repo>/build did not survive a rebuild in the worktree during the run
    // (node-gyp removes build/, and the kernel then detaches what is mounted on it in the run's
    // namespace: every later test file failed with "No native build was found").
    let addon: string;
    if (o.client === 'chroot') {
      const built = join(buildInChroot(o.release, root), 'build');
      binds.push({ src: built });
      addon = join(built, 'Release', 'rbd_stream.node');
    } else {
      // A copy of the host build, so a rebuild in the worktree during the run changes nothing.
      addon = join(setDir, 'host-build', 'Release', 'rbd_stream.node');
      mkdirSync(dirname(addon), { recursive: true });
      copyFileSync(join(REPO, 'build/Release/rbd_stream.node'), addon);
    }
    // The packed-package test (run alone or in the whole suite) gets a tarball packed here, on the host.
    const pairFiles = o.vitest.length === 0 && (o.client === 'pair' || o.client === 'pair-reverse') ? PAIR_FILES : [];
    const files = [...o.vitest.filter((a) => !a.startsWith('-')), ...pairFiles];
    const packedEnv = files.length === 0 || files.some((f) => f.includes('prebuild')) ? packForRelease(setDir) : {};
    const tUp = Date.now();
    const releases = o.client === 'pair' ? { a: 'host' as const, b: o.release }
      : o.client === 'pair-reverse' ? { a: o.release, b: 'host' as const } : { a: o.release, b: o.release };
    const set = await up({ dir: clustersDir, names: ['a', 'b'], releases, mirror: true, fastMon: true, log });
    log(`clusters a (${releases.a}), b (${releases.b}) up in ${((Date.now() - tUp) / 1000).toFixed(1)} s`);

    const env: NodeJS.ProcessEnv = { ...process.env };
    for (const k of Object.keys(env)) if (/^RBD_STREAM_(CONF|KEYRING|USER|POOL)_/.test(k) || k === 'RBD_STREAM_RELEASE' || k === 'RBD_STREAM_ADDON') delete env[k];
    delete env.CEPH_ARGS;
    delete env.CEPH_CONF;
    for (const l of envExports(set)) {
      const [k, v] = l.replace(/^export /, '').split('=');
      env[k] = v;
    }
    env.RBD_STREAM_MIRROR_DAEMONS = '1'; // started above, one per cluster
    env.RBD_STREAM_ADDON = addon;
    delete env.RBD_STREAM_PACKED;
    delete env.RBD_STREAM_NPM_CACHE;
    Object.assign(env, packedEnv);
    if (o.client === 'cross') env.RBD_STREAM_RELEASE = o.release;
    else if (!hostSide(o.client)) env.HOME = '/root';
    const reportJson = join(setDir, 'report.json');
    const vitestArgs = [join(REPO, 'node_modules/vitest/vitest.mjs'), 'run', '--project', 'integration',
      '--reporter=default', '--reporter=./test/support/health.ts', '--reporter=json', `--outputFile.json=${reportJson}`, ...o.vitest, ...pairFiles];
    const [file, args] = hostSide(o.client)
      ? [process.execPath, vitestArgs]
      : inRoot(root, 'node', vitestArgs, { binds, cwd: REPO });
    // Which librbd and node the client side really uses (the addon's own report).
    const probe = ['-e', `const b = require(${JSON.stringify(addon)}); console.log(process.version + ' librbd ' + b.librbdVersion)`];
    const [pf, pa] = hostSide(o.client) ? [process.execPath, probe] : inRoot(root, 'node', probe, { binds, cwd: REPO });
    const clientSide = spawnSync(pf, pa, { encoding: 'utf8', env }).stdout?.trim();
    log(`client: node ${clientSide}`);
    const tTest = Date.now();
    log(`vitest (${o.client} client) ${[...o.vitest, ...files].join(' ')}`);
    code = await new Promise<number>((res) => {
      child = spawn(file, args, { cwd: REPO, env, stdio: 'inherit' });
      child.on('exit', (c, s) => res(c ?? (s ? 128 : 1)));
      child.on('error', () => res(127));
    });
    const testSecs = (Date.now() - tTest) / 1000;
    if (existsSync(reportJson)) copyFileSync(reportJson, out);
    const versionsOf = (conf: string) => Object.keys((JSON.parse(spawnSync('ceph', ['-c', conf, 'versions', '--format', 'json'],
      { encoding: 'utf8' }).stdout || '{}') as { overall?: Record<string, number> }).overall ?? {}).join('; ');
    const versions = `a: ${versionsOf(set.clusters.a.conf)}; b: ${versionsOf(set.clusters.b.conf)}`;
    process.stderr.write(`\n[test:release] ${summarize(out, {
      release: o.release, client: o.client, clientSide, daemons: versions, date: new Date().toISOString(),
      testSeconds: Math.round(testSecs), totalSeconds: Math.round((Date.now() - t0) / 1000), exit: code, report: out,
    })}\n`);
  } finally {
    const tDown = Date.now();
    await down(clustersDir).catch((e) => log(`down failed: ${(e as Error).message}`));
    rmSync(setDir, { recursive: true, force: true });
    try { process.kill(watchdog); } catch { /* gone */ }
    log(`clusters stopped (${((Date.now() - tDown) / 1000).toFixed(1)} s)`);
  }
  process.exitCode = code;
}

main().catch((e) => {
  log((e as Error).message);
  process.exitCode = 1;
});
