// Edge cases vs the rbd CLI oracle: striping, odd sizes, namespaces, object sizes, no object map.
import { execFileSync } from 'node:child_process';
import { randomBytes, createHash } from 'node:crypto';
import { Rados, replicate, exportDiff } from '../lib/index.js';

const CA = process.env.RBD_STREAM_CONF_A!, CB = process.env.RBD_STREAM_CONF_B!;
const rbd = (conf: string, args: string[], input?: Buffer) =>
  execFileSync('rbd', ['-c', conf, ...args], { input, maxBuffer: 1 << 30 });
const md5 = (b: Buffer) => createHash('md5').update(b).digest('hex');
const exp = (conf: string, spec: string) => md5(rbd(conf, ['--no-progress', 'export', spec, '-']));

const a = await Rados.connect({ conf: CA }), b = await Rados.connect({ conf: CB });
let fails = 0;
async function kase(name: string, create: string[], size: number, ns = '') {
  const img = `edge-${name}-${process.pid}`;
  const spec = ns ? `rbd/${ns}/${img}` : `rbd/${img}`;
  for (const c of [CA, CB]) if (ns) try { rbd(c, ['namespace', 'create', `rbd/${ns}`]); } catch {}
  rbd(CA, ['create', '--size', `${size}B`, ...create, spec]);
  const pa = await a.openPool('rbd', { namespace: ns }), pb = await b.openPool('rbd', { namespace: ns });
  const im = await pa.openImage(img);
  const wr = async (n: number) => {
    for (let i = 0; i < n; i++) {
      const len = 1 + Math.floor(Math.random() * 300_000);
      const off = Math.floor(Math.random() * Math.max(1, (await im.stat()).size - len));
      const kind = Math.random();
      if (kind < 0.6) await im.write(randomBytes(len), off);
      else if (kind < 0.8) await im.write(Buffer.alloc(len), off);
      else await im.discard(off, len);
    }
  };
  // last byte too
  await wr(40); await im.write(Buffer.from('Z'), size - 1);
  await im.createSnapshot('s1');
  await wr(40);
  await im.resize(size + 12345, {}); await im.write(Buffer.from('END'), size + 12342);
  await im.createSnapshot('s2');
  await wr(20); await im.resize(size - 777, { allowShrink: true });
  await im.createSnapshot('s3');
  let prev: string | undefined;
  for (const s of ['s1', 's2', 's3']) {
    await replicate({ source: im, fromSnapshot: prev, toSnapshot: s, target: { pool: pb, name: img, create: prev ? undefined : {} }, verify: true });
    const ea = exp(CA, `${spec}@${s}`), eb = exp(CB, `${spec}@${s}`);
    // export-diff byte equality vs CLI
    const chunks: Buffer[] = [];
    for await (const c of exportDiff(im, { fromSnapshot: prev, snapshot: s, format: 1 })) chunks.push(c as Buffer);
    const ours = Buffer.concat(chunks);
    const cli = rbd(CA, ['--no-progress', 'export-diff', ...(prev ? ['--from-snap', prev] : []), `${spec}@${s}`, '-']);
    const ok = ea === eb && ours.equals(cli);
    if (!ok) fails++;
    console.log(`${name} ${s}: replicate ${ea === eb ? 'ok' : 'MISMATCH'}; export-diff ${ours.equals(cli) ? 'identical' : `DIFFERS (${ours.length} vs ${cli.length})`}`);
    prev = s;
  }
  await im.close();
  for (const c of [CA, CB]) { rbd(c, ['--no-progress', 'snap', 'purge', spec]); rbd(c, ['--no-progress', 'rm', spec]); }
}
await kase('striped', ['--object-size', '1M', '--stripe-unit', '64K', '--stripe-count', '4'], 24 << 20);
await kase('odd', [], (10 << 20) + 513);
await kase('ns', [], 16 << 20, 'ns1');
await kase('obj64k', ['--object-size', '64K'], 8 << 20);
await kase('obj32m', ['--object-size', '32M'], 80 << 20);
await kase('nomap', ['--image-feature', 'layering'], 16 << 20);
await kase('journal', ['--image-feature', 'layering,exclusive-lock,journaling'], 8 << 20);
await a.close(); await b.close();
console.log(fails ? `FAILURES: ${fails}` : 'all ok');
process.exit(fails ? 1 : 0);
