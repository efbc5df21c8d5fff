/**
 * Smoke check of one cluster with the library: node --import tsx test/release/smoke.ts <conf> <keyring>
 * Connects, creates an image, writes and reads back a little, checks the bytes, removes it.
 * Prints the librbd it loaded and the cluster's release (`ceph versions` through the mon).
 */
import { randomBytes } from 'node:crypto';
import { librbdVersion, Rados } from '../../lib/index.js';

const [conf, keyring] = process.argv.slice(2);
if (!conf || !keyring) throw new Error('usage: smoke.ts <conf> <keyring>');
const name = `smoke-${process.pid}`;
const t0 = Date.now();
const rados = await Rados.connect({ conf, keyring, user: 'admin' });
try {
  const pool = await rados.openPool('rbd');
  await pool.createImage(name, 64 << 20);
  const image = await pool.openImage(name);
  const data = randomBytes(64 << 10);
  await image.write(data, 4 << 20);
  await image.flush();
  const back = await image.read(4 << 20, data.length);
  const zeros = await image.read(0, 4096);
  await image.close();
  await pool.removeImage(name);
  await pool.close();
  if (!back.equals(data)) throw new Error('read back differs from what was written');
  if (zeros.some((b) => b !== 0)) throw new Error('unwritten range is not zero');
  console.log(JSON.stringify({
    ok: true, librbd: librbdVersion, addon: process.env.RBD_STREAM_ADDON ?? 'default', node: process.version,
    wroteAndRead: data.length, ms: Date.now() - t0,
  }));
} finally {
  await rados.close();
}
