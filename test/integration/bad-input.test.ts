// Over ~400 lines: one table of every public entry point's bad inputs, kept together so its
// case count and the no-native-call check cover the whole API.
// Table-driven bad input over every public entry point: each case must end in a
// TypeError/RangeError (thrown before native code runs) or a coded Error from
// librbd/librados — never a crash, a hang or a success.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  Image, Pool, Rados, importDiff, inspectDiff, parseDiff, replicate, syncImage, syncPool,
} from '../../lib/index.js';
import { END_RECORD, TAG, encodeBanner, encodeExtentHead, encodeName, encodeSize } from '../../lib/transfer/diff-format.js';
import { getClusters } from '../support/clusters.js';

const c = getClusters().a;
const tag = `bad-${process.pid}-${Date.now().toString(36)}`;
const IMG = `${tag}-img`;
const SIZE = 1 << 20;

interface Ctx {
  r: Rados;
  p: Pool;
  img: Image;
  roImg: Image;
  closedR: Rados;
  closedP: Pool;
  closedImg: Image;
}

type Expect = 'TypeError' | 'RangeError' | 'AbortError' | { code: string | RegExp };
interface Case {
  name: string;
  call: (x: Ctx) => unknown;
  expect: Expect;
}

const T: Expect = 'TypeError';
const R: Expect = 'RangeError';
const code = (c: string | RegExp): Expect => ({ code: c });

const BIG = 2 ** 53 + 2; // > 2^53: not a safe integer
const LONG = 'x'.repeat(1025);
/** Values no offset/length/size may take. */
const badUints: [string, unknown, Expect][] = [
  ['negative', -1, R],
  ['fractional', 1.5, R],
  ['NaN', NaN, R],
  ['Infinity', Infinity, R],
  ['> 2^53', BIG, R],
  ['string', '0', T],
  ['bigint', 1n, T],
  ['undefined', undefined, T],
  ['null', null, T],
];
/** Values no image/snapshot/pool name may take. */
const badNames: [string, unknown, Expect][] = [
  ['number', 5, T],
  ['undefined', undefined, T],
  ['empty', '', R],
  ['over-long', LONG, R],
  ["with '/'", 'a/b', T],
  ["with '@'", 'a@b', T],
  ['with NUL', 'a\0b', T],
];

const cases: Case[] = [];
const add = (name: string, call: Case['call'], e: Expect) => cases.push({ name, call, expect: e });

// --- Rados.connect -------------------------------------------------------------------------
const conn = (o: unknown) => () => Rados.connect(o as never);
add('connect: options not an object', conn('conf'), T);
add('connect: options array', conn([]), T);
add('connect: options null', conn(null), T);
add('connect: unknown option', conn({ conf: c.conf, bogus: 1 }), T);
add('connect: conf number', conn({ conf: 5 }), T);
add('connect: conf empty', conn({ conf: '' }), R);
add('connect: conf with NUL', conn({ conf: 'a\0b' }), T);
add('connect: conf missing file', conn({ conf: `/nonexistent/${tag}.conf`, timeoutMs: 3000 }), code('ENOENT'));
add('connect: user empty', conn({ conf: c.conf, user: '' }), R);
add('connect: user number', conn({ conf: c.conf, user: 7 }), T);
add('connect: key number', conn({ conf: c.conf, key: 12345 }), T);
add('connect: key with NUL', conn({ conf: c.conf, key: 'AQ\0' }), T);
add('connect: key not a cephx key', conn({ conf: c.conf, key: '%%AQBx%%' }), code('EINVAL'));
add('connect: key base64 but not a cephx key', conn({ conf: c.conf, key: 'AQAAAA==' }), code('EINVAL'));
add('connect: keyring empty', conn({ conf: c.conf, keyring: '' }), R);
for (const [what, v, e] of badUints.filter(([w]) => w !== 'undefined')) {
  add(`connect: timeoutMs ${what}`, conn({ conf: c.conf, timeoutMs: v }), e);
}
add('connect: timeoutMs over a day', conn({ conf: c.conf, timeoutMs: 86_400_001 }), R);
add('connect: config not object', conn({ conf: c.conf, config: 'x' }), T);
add('connect: config value number', conn({ conf: c.conf, config: { debug_rados: 0 } }), T);
add('connect: config empty key', conn({ conf: c.conf, config: { '': 'x' } }), R);
add('connect: config unknown librados option', conn({ conf: c.conf, config: { no_such_option_x: '1' } }), code('ENOENT'));

// --- Rados ---------------------------------------------------------------------------------
for (const [what, v, e] of badNames) add(`openPool: name ${what}`, (x) => x.r.openPool(v as string), e);
add('openPool: missing pool', (x) => x.r.openPool(`${tag}-nopool`), code('ENOENT'));
add('openPool: options not object', (x) => x.r.openPool(c.pool, 5 as never), T);
add('openPool: unknown option', (x) => x.r.openPool(c.pool, { ns: 'x' } as never), T);
add('openPool: namespace number', (x) => x.r.openPool(c.pool, { namespace: 5 as never }), T);
add("openPool: namespace with '/'", (x) => x.r.openPool(c.pool, { namespace: 'a/b' }), T);
add("command: target 'osd'", (x) => x.r.command('osd' as never, { prefix: 'status' }), T);
add('command: cmd null', (x) => x.r.command('mon', null as never), T);
add('command: no prefix', (x) => x.r.command('mon', {}), T);
add('command: prefix number', (x) => x.r.command('mon', { prefix: 5 }), T);
add('command: unknown command', (x) => x.r.command('mon', { prefix: 'no such command' }), code('EINVAL'));
add('commandJson: unknown command', (x) => x.r.commandJson('mgr', { prefix: 'no such command' }), code(/^E/));
add('closed connection: listPools', (x) => x.closedR.listPools(), code('ERR_CLOSED'));
add('closed connection: openPool', (x) => x.closedR.openPool(c.pool), code('ERR_CLOSED'));
add('closed connection: fsid', (x) => x.closedR.fsid(), code('ERR_CLOSED'));
add('closed connection: command', (x) => x.closedR.command('mon', { prefix: 'status' }), code('ERR_CLOSED'));

// --- Pool ----------------------------------------------------------------------------------
for (const [what, v, e] of badNames) add(`createImage: name ${what}`, (x) => x.p.createImage(v as string, SIZE), e);
for (const [what, v, e] of badUints) add(`createImage: size ${what}`, (x) => x.p.createImage(`${tag}-n`, v as number), e);
add('createImage: size 2^53-1 (librbd limit)', (x) => x.p.createImage(`${tag}-huge`, 2 ** 53 - 1), code('EINVAL'));
add('createImage: existing name', (x) => x.p.createImage(IMG, SIZE), code('EEXIST'));
add('createImage: unknown option', (x) => x.p.createImage(`${tag}-n`, SIZE, { size: 1 } as never), T);
add('createImage: features not array', (x) => x.p.createImage(`${tag}-n`, SIZE, { features: 'layering' as never }), T);
add('createImage: unknown feature', (x) => x.p.createImage(`${tag}-n`, SIZE, { features: ['warp-drive' as never] }), R);
add('createImage: order 11', (x) => x.p.createImage(`${tag}-n`, SIZE, { order: 11 }), R);
add('createImage: order 26', (x) => x.p.createImage(`${tag}-n`, SIZE, { order: 26 }), R);
add('createImage: order fractional', (x) => x.p.createImage(`${tag}-n`, SIZE, { order: 22.5 }), R);
add('createImage: stripeUnit 0', (x) => x.p.createImage(`${tag}-n`, SIZE, { stripeUnit: 0 }), R);
add('createImage: stripeCount -1', (x) => x.p.createImage(`${tag}-n`, SIZE, { stripeCount: -1 }), R);
add('createImage: dataPool empty', (x) => x.p.createImage(`${tag}-n`, SIZE, { dataPool: '' }), R);
add('createImage: missing dataPool', (x) => x.p.createImage(`${tag}-n`, SIZE, { dataPool: `${tag}-nopool` }), code('ENOENT'));
for (const [what, v, e] of badNames) add(`removeImage: name ${what}`, (x) => x.p.removeImage(v as string), e);
add('removeImage: missing image', (x) => x.p.removeImage(`${tag}-missing`), code('ENOENT'));
add('renameImage: from empty', (x) => x.p.renameImage('', 'x'), R);
add("renameImage: to with '@'", (x) => x.p.renameImage(IMG, 'x@y'), T);
add('renameImage: missing image', (x) => x.p.renameImage(`${tag}-missing`, `${tag}-m2`), code('ENOENT'));
for (const [what, v, e] of badNames) add(`openImage: name ${what}`, (x) => x.p.openImage(v as string), e);
add('openImage: missing image', (x) => x.p.openImage(`${tag}-missing`), code('ENOENT'));
add('openImage: options not object', (x) => x.p.openImage(IMG, 'ro' as never), T);
add('openImage: unknown option', (x) => x.p.openImage(IMG, { readonly: true } as never), T);
add('openImage: readOnly string', (x) => x.p.openImage(IMG, { readOnly: 'yes' as never }), T);
add('openImage: snapshot number', (x) => x.p.openImage(IMG, { snapshot: 5 as never }), T);
add('openImage: snapshot null', (x) => x.p.openImage(IMG, { snapshot: null as never }), T);
add('openImage: snapshot id negative', (x) => x.p.openImage(IMG, { snapshot: { id: -1 } }), R);
add('openImage: snapshot id NaN', (x) => x.p.openImage(IMG, { snapshot: { id: NaN } }), R);
add("openImage: snapshot with '@'", (x) => x.p.openImage(IMG, { snapshot: 'a@b' }), T);
add('openImage: missing snapshot', (x) => x.p.openImage(IMG, { snapshot: 'nosuch' }), code('ENOENT'));
add('openImage: missing snapshot id', (x) => x.p.openImage(IMG, { snapshot: { id: 999_999 } }), code('ENOENT'));
add('closed pool: createImage', (x) => x.closedP.createImage(`${tag}-n`, SIZE), code('ERR_CLOSED'));
add('closed pool: listImages', (x) => x.closedP.listImages(), code('ERR_CLOSED'));
add('closed pool: openImage', (x) => x.closedP.openImage(IMG), code('ERR_CLOSED'));
add('closed pool: removeImage', (x) => x.closedP.removeImage(IMG), code('ERR_CLOSED'));
add('closed pool: id', (x) => x.closedP.id, code('ERR_CLOSED'));

// --- Image ---------------------------------------------------------------------------------
for (const [what, v, e] of badUints) {
  add(`read: offset ${what}`, (x) => x.img.read(v as number, 16), e);
  add(`read: length ${what}`, (x) => x.img.read(0, v as number), e);
  add(`write: offset ${what}`, (x) => x.img.write(Buffer.alloc(16), v as number), e);
  add(`discard: offset ${what}`, (x) => x.img.discard(v as number, 16), e);
  add(`discard: length ${what}`, (x) => x.img.discard(0, v as number), e);
  add(`writeZeroes: offset ${what}`, (x) => x.img.writeZeroes(v as number, 16), e);
  add(`writeZeroes: length ${what}`, (x) => x.img.writeZeroes(0, v as number), e);
  add(`resize: size ${what}`, (x) => x.img.resize(v as number), e);
  add(`diff: offset ${what}`, (x) => drain(x.img.diff({ offset: v as number })), v === undefined ? { code: 'ok' } : e);
}
add('read: length over 1 GiB', (x) => x.img.read(0, 2 ** 30 + 1), R);
add('read: offset past the end', (x) => x.img.read(SIZE + 4096, 16), code('EINVAL'));
add('write: offset past the end', (x) => x.img.write(Buffer.alloc(16), SIZE + 4096), code('EINVAL'));
add('write: data string', (x) => x.img.write('abc' as never, 0), T);
add('write: data null', (x) => x.img.write(null as never, 0), T);
add('write: data array', (x) => x.img.write([1, 2, 3] as never, 0), T);
add('write: data number', (x) => x.img.write(42 as never, 0), T);
add('write: no arguments', (x) => (x.img.write as () => unknown)(), T);
add('read: no arguments', (x) => (x.img.read as () => unknown)(), T);
add('resize: shrink without allowShrink', (x) => x.img.resize(4096), code('EINVAL'));
add('resize: allowShrink string', (x) => x.img.resize(SIZE, { allowShrink: 'yes' as never }), T);
add('resize: unknown option', (x) => x.img.resize(SIZE, { shrink: true } as never), T);
add('updateFeatures: unknown feature', (x) => x.img.updateFeatures(['warp-drive' as never], true), R);
add('updateFeatures: not an array', (x) => x.img.updateFeatures('layering' as never, true), T);
add('updateFeatures: enabled string', (x) => x.img.updateFeatures(['exclusive-lock'], 'true' as never), T);
add('updateFeatures: layering cannot change', (x) => x.img.updateFeatures(['layering'], false), code('EINVAL'));
add('getMetadata: key number', (x) => x.img.getMetadata(5 as never), T);
add('getMetadata: key empty', (x) => x.img.getMetadata(''), R);
add('setMetadata: value number', (x) => x.img.setMetadata('k', 5 as never), T);
add('setMetadata: value with NUL', (x) => x.img.setMetadata('k', 'a\0b'), T);
add('setMetadata: key over-long', (x) => x.img.setMetadata(LONG, 'v'), R);
add('removeMetadata: missing key', (x) => x.img.removeMetadata(`${tag}-nokey`), code('ENOENT'));
for (const [what, v, e] of badNames) add(`createSnapshot: name ${what}`, (x) => x.img.createSnapshot(v as string), e);
add('removeSnapshot: number', (x) => x.img.removeSnapshot(5 as never), T);
add('removeSnapshot: null', (x) => x.img.removeSnapshot(null as never), T);
add('removeSnapshot: id fractional', (x) => x.img.removeSnapshot({ id: 1.5 }), R);
add('removeSnapshot: id > 2^53', (x) => x.img.removeSnapshot({ id: BIG }), R);
add('removeSnapshot: missing name', (x) => x.img.removeSnapshot('nosuch'), code('ENOENT'));
add('removeSnapshot: force string', (x) => x.img.removeSnapshot('nosuch', { force: 1 as never }), T);
add('listSnapshots: allNamespaces number', (x) => x.img.listSnapshots({ allNamespaces: 1 as never }), T);
add('listSnapshots: unknown option', (x) => x.img.listSnapshots({ all: true } as never), T);
add('getSnapshot: empty', (x) => x.img.getSnapshot(''), R);
add('rollbackToSnapshot: missing', (x) => x.img.rollbackToSnapshot('nosuch'), code('ENOENT'));
add('protectSnapshot: number', (x) => x.img.protectSnapshot(5 as never), T);
add('protectSnapshot: missing', (x) => x.img.protectSnapshot('nosuch'), code('ENOENT'));
add('unprotectSnapshot: missing', (x) => x.img.unprotectSnapshot('nosuch'), code('ENOENT'));
add('setSnapshot: number', (x) => x.img.setSnapshot(5 as never), T);
add('setSnapshot: missing', (x) => x.img.setSnapshot('nosuch'), code('ENOENT'));
add('setSnapshot: missing id', (x) => x.img.setSnapshot({ id: 999_999 }), code('ENOENT'));
add('diff: options not object', (x) => drain(x.img.diff(7 as never)), T);
add('diff: unknown option', (x) => drain(x.img.diff({ from: 'a' } as never)), T);
add('diff: fromSnapshot number', (x) => drain(x.img.diff({ fromSnapshot: 5 as never })), T);
add('diff: fromSnapId and fromSnapshot', (x) => drain(x.img.diff({ fromSnapId: 1, fromSnapshot: 'snap1' })), T);
add('diff: fromSnapId string', (x) => drain(x.img.diff({ fromSnapId: '4' as never })), T);
add('diff: fromSnapId negative', (x) => drain(x.img.diff({ fromSnapId: -1 })), R);
add('diff: fromSnapId fractional', (x) => drain(x.img.diff({ fromSnapId: 1.5 })), T);
add('diff: fromSnapId 2^64', (x) => drain(x.img.diff({ fromSnapId: 2n ** 64n })), R);
add('diff: missing fromSnapshot', (x) => drain(x.img.diff({ fromSnapshot: 'nosuch' })), code('ENOENT'));
add('diff: length negative', (x) => drain(x.img.diff({ length: -1 })), R);
add('diff: batchSize 0', (x) => drain(x.img.diff({ batchSize: 0 })), R);
add('diff: batchSize huge', (x) => drain(x.img.diff({ batchSize: 2 ** 40 })), R);
add('diff: wholeObject string', (x) => drain(x.img.diff({ wholeObject: 'y' as never })), T);
add('diff: signal not AbortSignal', (x) => drain(x.img.diff({ signal: {} as never })), T);
add('diff: aborted signal', (x) => drain(x.img.diff({ signal: AbortSignal.abort() })), 'AbortError');
for (const m of ['stat', 'flush', 'listMetadata', 'listSnapshots'] as const) {
  add(`closed image: ${m}`, (x) => (x.closedImg[m] as () => Promise<unknown>)(), code('ERR_CLOSED'));
}
add('closed image: read', (x) => x.closedImg.read(0, 16), code('ERR_CLOSED'));
add('closed image: write', (x) => x.closedImg.write(Buffer.alloc(16), 0), code('ERR_CLOSED'));
add('closed image: createSnapshot', (x) => x.closedImg.createSnapshot('s'), code('ERR_CLOSED'));
add('closed image: diff', (x) => drain(x.closedImg.diff()), code('ERR_CLOSED'));

// --- replicate ------------------------------------------------------------------------------
const rep = (f: (x: Ctx) => unknown) => (x: Ctx) => replicate(f(x) as never);
const rOpts = (x: Ctx, extra: Record<string, unknown> = {}) =>
  ({ source: x.img, toSnapshot: 'snap1', target: { pool: x.p, name: `${tag}-rt`, create: {} }, ...extra });
add('replicate: options not object', rep(() => 'x'), T);
add('replicate: options null', rep(() => null), T);
add('replicate: no options', (x) => (replicate as () => unknown)(), T);
add('replicate: unknown option', rep((x) => rOpts(x, { chunk: 1 })), T);
add('replicate: source missing', rep((x) => ({ ...rOpts(x), source: undefined })), T);
add('replicate: source a Pool', rep((x) => ({ ...rOpts(x), source: x.p })), T);
add('replicate: source closed', rep((x) => ({ ...rOpts(x), source: x.closedImg })), code('ERR_CLOSED'));
add('replicate: toSnapshot missing', rep((x) => ({ ...rOpts(x), toSnapshot: undefined })), T);
add('replicate: toSnapshot empty', rep((x) => rOpts(x, { toSnapshot: '' })), R);
add("replicate: toSnapshot with '@'", rep((x) => rOpts(x, { toSnapshot: 'a@b' })), T);
add('replicate: toSnapshot with NUL', rep((x) => rOpts(x, { toSnapshot: 'a\0' })), T);
add('replicate: toSnapshot over-long', rep((x) => rOpts(x, { toSnapshot: LONG })), R);
add('replicate: fromSnapshot = toSnapshot', rep((x) => rOpts(x, { fromSnapshot: 'snap1' })), R);
add('replicate: fromSnapshot number', rep((x) => rOpts(x, { fromSnapshot: 3 })), T);
add('replicate: fromSnapId and fromSnapshot', rep((x) => rOpts(x, { fromSnapId: 1, fromSnapshot: 'snap0' })), T);
add('replicate: fromSnapId > 2^53', rep((x) => rOpts(x, { fromSnapId: 2 ** 60 })), R);
for (const [what, v, e] of [...badUints.filter(([w]) => w !== 'undefined'), ['0', 0, R], ['16385', 16385, R], ['huge', 2 ** 31, R]] as [string, unknown, Expect][]) {
  add(`replicate: concurrency ${what}`, rep((x) => rOpts(x, { concurrency: v })), e);
}
add('replicate: chunkSize 4095', rep((x) => rOpts(x, { chunkSize: 4095 })), R);
add('replicate: chunkSize not a multiple of 4 KiB', rep((x) => rOpts(x, { chunkSize: 6000 })), R);
add('replicate: chunkSize 1 TiB', rep((x) => rOpts(x, { chunkSize: 2 ** 40 })), R);
add('replicate: chunkSize NaN', rep((x) => rOpts(x, { chunkSize: NaN })), R);
add('replicate: inflightBytes below chunkSize', rep((x) => rOpts(x, { chunkSize: 1 << 20, inflightBytes: 4096 })), R);
add('replicate: inflightBytes 2 GiB', rep((x) => rOpts(x, { inflightBytes: 2 ** 31 })), R);
add('replicate: inflightBytes string', rep((x) => rOpts(x, { inflightBytes: '64M' })), T);
add('replicate: bandwidth 0', rep((x) => rOpts(x, { bandwidth: 0 })), R);
add('replicate: bandwidth negative', rep((x) => rOpts(x, { bandwidth: -5 })), R);
add('replicate: bandwidth Infinity', rep((x) => rOpts(x, { bandwidth: Infinity })), T);
add('replicate: bandwidth string', rep((x) => rOpts(x, { bandwidth: '50M' })), T);
add('replicate: writeGap -1', rep((x) => rOpts(x, { writeGap: -1 })), R);
add('replicate: writeGap fractional', rep((x) => rOpts(x, { writeGap: 4096.5 })), R);
add('replicate: writeGap string', rep((x) => rOpts(x, { writeGap: '64K' })), T);
add('replicate: verify string', rep((x) => rOpts(x, { verify: 'yes' })), T);
add('replicate: force number', rep((x) => rOpts(x, { force: 1 })), T);
add('replicate: signal object', rep((x) => rOpts(x, { signal: {} })), T);
add('replicate: aborted signal', rep((x) => rOpts(x, { signal: AbortSignal.abort() })), 'AbortError');
add('replicate: onProgress string', rep((x) => rOpts(x, { onProgress: 'log' })), T);
add('replicate: target missing', rep((x) => ({ ...rOpts(x), target: undefined })), T);
add('replicate: target a string', rep((x) => rOpts(x, { target: 'rbd/x' })), T);
add('replicate: target.pool a string', rep((x) => rOpts(x, { target: { pool: 'rbd', name: 'x' } })), T);
add('replicate: target.name missing', rep((x) => rOpts(x, { target: { pool: x.p } })), T);
add("replicate: target.name with '/'", rep((x) => rOpts(x, { target: { pool: x.p, name: 'a/b' } })), T);
add('replicate: target.name empty', rep((x) => rOpts(x, { target: { pool: x.p, name: '' } })), R);
add('replicate: target unknown key', rep((x) => rOpts(x, { target: { pool: x.p, name: 'n', size: 1 } })), T);
add('replicate: target.create not object', rep((x) => rOpts(x, { target: { pool: x.p, name: 'n', create: 5 } })), T);
add('replicate: target.create.order 11', rep((x) => rOpts(x, { target: { pool: x.p, name: 'n', create: { order: 11 } } })), R);
add('replicate: target.create unknown feature', rep((x) => rOpts(x, { target: { pool: x.p, name: 'n', create: { features: ['nope'] } } })), R);
add('replicate: target.create.stripeCount 0', rep((x) => rOpts(x, { target: { pool: x.p, name: 'n', create: { stripeCount: 0 } } })), R);
add('replicate: target.create unknown key', rep((x) => rOpts(x, { target: { pool: x.p, name: 'n', create: { size: 1 } } })), T);
add('replicate: target read-only image', rep((x) => rOpts(x, { target: x.roImg })), T);
add('replicate: target closed image', rep((x) => rOpts(x, { target: x.closedImg })), code('ERR_CLOSED'));
add('replicate: missing source snapshot', rep((x) => rOpts(x, { toSnapshot: 'nosuch' })), code('ENOENT'));
add('replicate: missing target, no create', rep((x) => rOpts(x, { target: { pool: x.p, name: `${tag}-absent` } })), code('ENOENT'));
add('replicate: into itself (snapshot exists)', rep((x) => rOpts(x, { target: x.img })), code('EEXIST'));

// --- exportDiff / importDiff / inspectDiff / parseDiff ---------------------------------------
// image.exportDiff(options): the image is the receiver, so only the options can be wrong in type.
const exp = (f: (x: Ctx) => [Image, unknown]) => (x: Ctx) => { const [img, o] = f(x); return drain(img.exportDiff(o as never)); };
add('exportDiff: options null', exp((x) => [x.img, null]), T);
add('exportDiff: options an array', exp((x) => [x.img, [{ snapshot: 'snap1' }]]), T);
add('exportDiff: no options', exp((x) => [x.img, undefined]), T);
add('exportDiff: unknown option', exp((x) => [x.img, { snapshot: 'snap1', snap: 1 }]), T);
add('exportDiff: fromSnapId and fromSnapshot', exp((x) => [x.img, { snapshot: 'snap1', fromSnapshot: 'a', fromSnapId: 1 }]), T);
add('exportDiff: fromSnapId NaN', exp((x) => [x.img, { snapshot: 'snap1', fromSnapId: NaN }]), T);
add('exportDiff: snapshot empty', exp((x) => [x.img, { snapshot: '' }]), R);
add("exportDiff: snapshot with '/'", exp((x) => [x.img, { snapshot: 'a/b' }]), T);
add('exportDiff: format 3', exp((x) => [x.img, { snapshot: 'snap1', format: 3 }]), R);
add("exportDiff: format '1'", exp((x) => [x.img, { snapshot: 'snap1', format: '1' }]), R);
add('exportDiff: concurrency 0', exp((x) => [x.img, { snapshot: 'snap1', concurrency: 0 }]), R);
add('exportDiff: concurrency huge', exp((x) => [x.img, { snapshot: 'snap1', concurrency: 1e9 }]), R);
add('exportDiff: concurrency fractional', exp((x) => [x.img, { snapshot: 'snap1', concurrency: 2.5 }]), R);
add('exportDiff: missing snapshot', exp((x) => [x.img, { snapshot: 'nosuch' }]), code('ENOENT'));
add('exportDiff: missing fromSnapshot', exp((x) => [x.img, { snapshot: 'snap1', fromSnapshot: 'nosuch' }]), code('ENOENT'));
add('exportDiff: closed image', exp((x) => [x.closedImg, { snapshot: 'snap1' }]), code('ERR_CLOSED'));

const v1 = (...parts: Buffer[]) => [encodeBanner(1), ...parts];
const imp = (input: (x: Ctx) => unknown, opts: unknown = {}, on: (x: Ctx) => Image = (x) => x.img) =>
  (x: Ctx) => importDiff({ input: input(x), target: on(x), ...(opts as object) } as never);
add('importDiff: no options', () => importDiff(undefined as never), T);
add('importDiff: input missing', (x: Ctx) => importDiff({ target: x.img } as never), T);
add('importDiff: input null', imp(() => null), T);
add('importDiff: input number', imp(() => 5), T);
add('importDiff: input string', imp(() => 'rbd diff v1\n'), T);
add('importDiff: target null', imp(() => v1(END_RECORD), {}, () => null as never), T);
add('importDiff: target a Pool', imp(() => v1(END_RECORD), {}, (x) => x.p as never), T);
add('importDiff: read-only image', imp(() => v1(END_RECORD), {}, (x) => x.roImg), code('EROFS'));
add('importDiff: closed image', imp(() => v1(END_RECORD), {}, (x) => x.closedImg), code('ERR_CLOSED'));
add('importDiff: unknown option', imp(() => v1(END_RECORD), { verify: true }), T);
add('importDiff: concurrency 0', imp(() => v1(END_RECORD), { concurrency: 0 }), R);
add('importDiff: concurrency NaN', imp(() => v1(END_RECORD), { concurrency: NaN }), R);
add('importDiff: expectSource string', imp(() => v1(END_RECORD), { expectSource: 'a' }), T);
add('importDiff: empty input', imp(() => []), code('ERR_DIFF_BANNER'));
add('importDiff: not a diff', imp(() => [Buffer.from('hello, world, this is no diff')]), code('ERR_DIFF_BANNER'));
add('importDiff: truncated', imp(() => v1(encodeSize(1, SIZE))), code('ERR_DIFF_TRUNCATED'));
add('importDiff: unknown tag', imp(() => v1(Buffer.of(0x51))), code('ERR_DIFF_UNKNOWN_TAG'));
add('importDiff: extent past the size', imp(() => v1(encodeSize(1, SIZE), encodeExtentHead(1, true, SIZE, 4096), END_RECORD)), code('ERR_DIFF_RANGE'));
add('importDiff: offset > 2^53', imp(() => v1(Buffer.concat([Buffer.of(TAG.zero), Buffer.from('ffffffffffffff7f', 'hex'), Buffer.alloc(8)]), END_RECORD)), code('ERR_DIFF_RANGE'));
add('importDiff: missing from-snapshot', imp(() => v1(encodeName(1, TAG.from, 'nosuch'), encodeName(1, TAG.to, 'x2'), encodeSize(1, SIZE), END_RECORD)), code('ENOENT'));
add('importDiff: to-snapshot exists', imp(() => v1(encodeName(1, TAG.to, 'snap1'), encodeSize(1, SIZE), END_RECORD)), code('EEXIST'));
add('inspectDiff: input null', () => inspectDiff(null as never), T);
add('inspectDiff: garbage', () => inspectDiff([Buffer.alloc(100, 0xff)]), code('ERR_DIFF_BANNER'));
add('parseDiff: input number', () => drain(parseDiff(42 as never)), T);

// --- syncImage / syncPool -------------------------------------------------------------------
const sy = (f: (x: Ctx) => unknown) => (x: Ctx) => syncImage(f(x) as never);
const sOpts = (x: Ctx, extra: Record<string, unknown> = {}) => ({ source: x.img, target: { pool: x.p, name: `${tag}-st` }, ...extra });
add('syncImage: options not object', sy(() => 7), T);
add('syncImage: source a string', sy((x) => ({ ...sOpts(x), source: 'rbd/img' })), T);
add('syncImage: target missing', sy((x) => ({ ...sOpts(x), target: undefined })), T);
add('syncImage: fromSnapId a string', sy((x) => ({ ...sOpts(x), fromSnapId: '1' })), T);
add('syncImage: fromSnapId negative bigint', sy((x) => ({ ...sOpts(x), fromSnapId: -1n })), R);
add("syncImage: target.name with '@'", sy((x) => sOpts(x, { target: { pool: x.p, name: 'a@b' } })), T);
add('syncImage: prefix empty', sy((x) => sOpts(x, { prefix: '' })), R);
add("syncImage: prefix with '/'", sy((x) => sOpts(x, { prefix: 'a/' })), T);
add('syncImage: keep not object', sy((x) => sOpts(x, { keep: 3 })), T);
add('syncImage: keep.source 0', sy((x) => sOpts(x, { keep: { source: 0 } })), R);
add('syncImage: keep.target fractional', sy((x) => sOpts(x, { keep: { target: 1.5 } })), R);
add('syncImage: keep unknown key', sy((x) => sOpts(x, { keep: { both: 1 } })), T);
add('syncImage: concurrency 0', sy((x) => sOpts(x, { concurrency: 0 })), R);
add('syncImage: concurrency huge', sy((x) => sOpts(x, { concurrency: 1e6 })), R);
add('syncImage: bandwidth 0', sy((x) => sOpts(x, { bandwidth: 0 })), R);
add('syncImage: inflightBytes below one chunk', sy((x) => sOpts(x, { inflightBytes: 4096 })), R);
add('syncImage: inflightBytes string', sy((x) => sOpts(x, { inflightBytes: '48M' })), T);
add('syncImage: bandwidth string', sy((x) => sOpts(x, { bandwidth: '1G' })), T);
add('syncImage: writeGap NaN', sy((x) => sOpts(x, { writeGap: NaN })), R);
add('syncImage: verify number', sy((x) => sOpts(x, { verify: 1 })), T);
add('syncImage: aborted signal', sy((x) => sOpts(x, { signal: AbortSignal.abort() })), 'AbortError');
add('syncImage: closed source', sy((x) => ({ ...sOpts(x), source: x.closedImg })), code('ERR_CLOSED'));
add('syncImage: closed target pool', sy((x) => sOpts(x, { target: { pool: x.closedP } })), code('ERR_CLOSED'));
const sp = (f: (x: Ctx) => unknown) => (x: Ctx) => syncPool(f(x) as never);
add('syncPool: source an Image', sp((x) => ({ source: x.img, target: x.p })), T);
add('syncPool: target missing', sp((x) => ({ source: x.p })), T);
add('syncPool: parallel 0', sp((x) => ({ source: x.p, target: x.p, parallel: 0 })), R);
add('syncPool: parallel 65', sp((x) => ({ source: x.p, target: x.p, parallel: 65 })), R);
add('syncPool: images number', sp((x) => ({ source: x.p, target: x.p, images: 5 })), T);
add("syncPool: image name with '/'", sp((x) => ({ source: x.p, target: x.p, images: ['a/b'] })), T);
add('syncPool: concurrency -1', sp((x) => ({ source: x.p, target: x.p, images: [], concurrency: -1 })), R);
add('syncPool: bandwidth NaN', sp((x) => ({ source: x.p, target: x.p, images: [], bandwidth: NaN })), T);
add('syncPool: inflightBytes over 1 GiB', sp((x) => ({ source: x.p, target: x.p, images: [], inflightBytes: 2 ** 31 })), R);
add('syncPool: onImage string', sp((x) => ({ source: x.p, target: x.p, onImage: 'x' })), T);

async function drain(it: AsyncIterable<unknown>): Promise<void> {
  for await (const _ of it) { /* consume */ }
}

/** Runs a case, bounded in time; returns what it threw/rejected with (or 'resolved'). */
async function outcome(x: Ctx, cs: Case): Promise<unknown> {
  let timer: NodeJS.Timeout | undefined;
  const hang = new Promise((_, rej) => { timer = setTimeout(() => rej(new Error('HANG: no result in 15 s')), 15_000); });
  try {
    await Promise.race([(async () => cs.call(x))(), hang]);
    return 'resolved';
  } catch (e) {
    return e;
  } finally {
    clearTimeout(timer);
  }
}

describe('bad input', () => {
  let ctx: Ctx;
  beforeAll(async () => {
    const opts = { conf: c.conf, keyring: c.keyring, user: c.user, timeoutMs: 10_000 };
    const r = await Rados.connect(opts);
    const p = await r.openPool(c.pool);
    await p.createImage(IMG, SIZE);
    const img = await p.openImage(IMG);
    await img.write(Buffer.alloc(8192, 5), 4096);
    await img.createSnapshot('snap1');
    const roImg = await p.openImage(IMG, { readOnly: true });
    const closedR = await Rados.connect(opts);
    const closedP = await r.openPool(c.pool);
    const closedImg = await p.openImage(IMG);
    await closedImg.close();
    await closedP.close();
    await closedR.close();
    ctx = { r, p, img, roImg, closedR, closedP, closedImg };
  });
  afterAll(async () => {
    if (!ctx) return;
    for (const s of await ctx.img.listSnapshots()) await ctx.img.removeSnapshot({ id: s.id });
    await ctx.img.close();
    await ctx.roImg.close();
    for (const n of await ctx.p.listImages()) {
      if (!n.startsWith(tag)) continue;
      const i = await ctx.p.openImage(n);
      for (const s of await i.listSnapshots()) await i.removeSnapshot({ id: s.id }, { force: true });
      await i.close();
      await ctx.p.removeImage(n);
    }
    await ctx.r.close();
  });

  it('has at least 100 cases', () => {
    expect(cases.length).toBeGreaterThanOrEqual(100);
    expect(new Set(cases.map((cs) => cs.name)).size).toBe(cases.length);
  });

  it.each(cases.map((cs) => [cs.name, cs] as const))('%s', async (_n, cs) => {
    const got = await outcome(ctx, cs);
    if (typeof cs.expect === 'object' && cs.expect.code === 'ok') {
      expect(got).toBe('resolved');
      return;
    }
    expect(got, 'must fail').toBeInstanceOf(Error);
    const e = got as Error & { code?: unknown };
    expect(e.message).not.toMatch(/^HANG/);
    if (cs.expect === 'TypeError' || cs.expect === 'RangeError') {
      expect(e.constructor.name, e.message).toBe(cs.expect);
    } else if (cs.expect === 'AbortError') {
      expect(e.name).toBe('AbortError');
    } else {
      expect(typeof e.code, e.message).toBe('string');
      if (typeof cs.expect.code === 'string') expect(e.code, e.message).toBe(cs.expect.code);
      else expect(e.code).toMatch(cs.expect.code);
      expect(e.message.length).toBeGreaterThan(10);
    }
  });

  it("a caller's target Image stays writable after replicate (it was EROFS: manual lock mode)", async () => {
    const name = `${tag}-own`;
    await ctx.p.createImage(name, SIZE);
    const t = await ctx.p.openImage(name);
    try {
      await t.write(Buffer.alloc(512, 1), 0); // takes the exclusive lock (automatic mode)
      await replicate({ source: ctx.img, toSnapshot: 'snap1', target: t, force: true });
      await t.write(Buffer.alloc(512, 2), 0);
      expect((await t.read(0, 1))[0]).toBe(2);
      expect((await t.listSnapshots()).map((s) => s.name)).toEqual(['snap1']);
    } finally {
      await t.close();
    }
  });

  it('the connection still works after all cases', async () => {
    const data = Buffer.alloc(4096, 7);
    await ctx.img.write(data, 0);
    expect((await ctx.img.read(0, 4096)).equals(data)).toBe(true);
    expect(await ctx.r.listPools()).toContain(c.pool);
  });
});
