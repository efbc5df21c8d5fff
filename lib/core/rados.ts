// A connection to one cluster.
import { native, type ClusterHandle } from '../binding/index.js';
import { NativeHandle } from './handle.js';
import { codedError, errnoCode } from './errors.js';
import { checkName, checkOptions, checkUint } from './validate.js';
import { Pool } from './pool.js';
import { kHandle, kTrack, kForget } from './internal.js';
import { RadosMirror } from '../mirror/rados.js';

export interface ConnectOptions {
  /** Path to ceph.conf; default: librados' search (CEPH_CONF, /etc/ceph/ceph.conf). */
  conf?: string;
  /** Cluster name (default 'ceph'). */
  clusterName?: string;
  /** User id ('admin') or full name ('client.admin'). Default 'admin'. */
  user?: string;
  /** Keyring path. */
  keyring?: string;
  /** Secret key (base64), used in memory only: never written to disk or shown in errors. */
  key?: string;
  /** Extra librados options, e.g. { mon_host: 'v2:127.0.0.1:3300' }. */
  config?: Record<string, string>;
  /** Operation timeout for mon and OSD requests (default 30000 ms); 0 disables it. */
  timeoutMs?: number;
}

const CONNECT_OPTIONS = ['conf', 'clusterName', 'user', 'keyring', 'key', 'config', 'timeoutMs'] as const;
export const DEFAULT_TIMEOUT_MS = 30_000;

/**
 * A cephx key as `ceph auth get-key` prints it: base64 of le16 type, le32+le32 created, le16
 * length and that many secret bytes (16 for AES keys, 32 for Tentacle's AES-256 ones).
 */
function isCephxKey(key: string): boolean {
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(key) || key.length % 4 !== 0) return false;
  const b = Buffer.from(key, 'base64');
  return b.length >= 12 && b.readUInt16LE(10) > 0 && 12 + b.readUInt16LE(10) === b.length;
}

export class Rados extends NativeHandle<ClusterHandle> {
  readonly user: string;
  readonly timeoutMs: number;
  private cachedFsid: string | undefined;
  private mirrorOps: RadosMirror | undefined;

  private constructor(handle: ClusterHandle, user: string, timeoutMs: number) {
    super(handle, () => `connection (${this.user})`);
    this.user = user;
    this.timeoutMs = timeoutMs;
  }

  static async connect(options: ConnectOptions = {}): Promise<Rados> {
    const o = checkOptions<ConnectOptions>(options, 'Rados.connect options', CONNECT_OPTIONS);
    if (o.conf !== undefined) checkName(o.conf, 'conf');
    if (o.clusterName !== undefined) checkName(o.clusterName, 'clusterName');
    if (o.keyring !== undefined) checkName(o.keyring, 'keyring');
    if (o.key !== undefined) checkName(o.key, 'key');
    const userId = o.user === undefined ? 'admin' : checkName(o.user, 'user');
    const fullName = userId.includes('.') ? userId : `client.${userId}`;
    const timeoutMs = o.timeoutMs === undefined ? DEFAULT_TIMEOUT_MS : checkUint(o.timeoutMs, 'timeoutMs', { max: 86_400_000 });
    const config: [string, string][] = [['log_to_stderr', 'false'], ['err_to_stderr', 'false']];
    if (timeoutMs > 0) {
      const secs = String(Math.max(1, Math.ceil(timeoutMs / 1000)));
      config.push(['rados_osd_op_timeout', secs], ['rados_mon_op_timeout', secs], ['client_mount_timeout', secs]);
    }
    if (o.config !== undefined) {
      if (o.config === null || typeof o.config !== 'object') throw new TypeError('config must be an object of strings');
      for (const [k, v] of Object.entries(o.config)) {
        checkName(k, 'config key');
        if (typeof v !== 'string') throw new TypeError(`config['${k}'] must be a string`);
        config.push([k, v]);
      }
    }
    if (o.keyring !== undefined) config.push(['keyring', o.keyring]);
    if (o.key !== undefined) {
      // librados' answer to a key that is not a cephx key differs by release (EINVAL up to Reef,
      // ENOENT "No such file or directory" from Tentacle): refuse it here, the same everywhere.
      if (!isCephxKey(o.key)) {
        throw codedError('EINVAL', `connect to cluster as ${fullName} failed: the key is not a base64 cephx key`, {
          errno: -22, operation: `connect to cluster as ${fullName}`,
        });
      }
      config.push(['key', o.key]);
    }
    // librados' admin socket answers `config get key` with the secret in clear to any local
    // process that can open the socket: no admin socket for connections holding an inline key.
    if (config.some(([k]) => k === 'key')) config.push(['admin_socket', '']);
    const handle = await native.connect({ conf: o.conf, clusterName: o.clusterName, user: fullName, config });
    return new Rados(handle, fullName, timeoutMs);
  }

  /** Cluster-wide mirroring: site name, mirror-snapshot schedules. */
  get mirror(): RadosMirror {
    return (this.mirrorOps ??= new RadosMirror(this));
  }

  /** The cluster's fsid. */
  async fsid(): Promise<string> {
    const h = this[kHandle];
    this.cachedFsid ??= native.getFsid(h);
    return this.cachedFsid;
  }

  /** This connection's client id (`client.<id>`), as watchers (image.listWatchers()) report it. */
  instanceId(): number {
    return native.getInstanceId(this[kHandle]);
  }

  listPools(): Promise<string[]> {
    return this.life.run(() => native.listPools(this[kHandle]));
  }

  async openPool(name: string, options: { namespace?: string } = {}): Promise<Pool> {
    checkName(name, 'pool name', { forbid: '/@' });
    const o = checkOptions<{ namespace?: string }>(options, 'openPool options', ['namespace']);
    if (o.namespace !== undefined && o.namespace !== '') checkName(o.namespace, 'namespace', { forbid: '/@' });
    const ioctx = await this.life.run(() => native.openPool(this[kHandle], name, o.namespace ?? ''));
    const pool = new Pool(this, ioctx, name, o.namespace ?? '');
    this.life.adopt(pool);
    return pool;
  }

  /** @internal */
  [kForget](pool: Pool): void {
    this.life.forget(pool);
  }

  /**
   * Sends a mon or mgr command (JSON object with `prefix`), returns its output.
   * Failures reject with a coded Error carrying the cluster's status text.
   */
  async command(target: 'mon' | 'mgr', cmd: Record<string, unknown>, input?: Buffer): Promise<{ out: Buffer; status: string }> {
    if (target !== 'mon' && target !== 'mgr') throw new TypeError("target must be 'mon' or 'mgr'");
    if (cmd === null || typeof cmd !== 'object' || typeof cmd.prefix !== 'string') {
      throw new TypeError('cmd must be an object with a string prefix');
    }
    const r = await this.life.run(() => native.sendCommand(this[kHandle], target, JSON.stringify(cmd), input));
    if (r.rc < 0) {
      const code = errnoCode(r.rc);
      throw codedError(code, `${target} command '${cmd.prefix}' failed: ${r.status || 'no status'}`, {
        errno: r.rc,
        operation: `${target} command ${cmd.prefix}`,
        status: r.status,
      });
    }
    return { out: r.out, status: r.status };
  }

  /** Like command(), parsing JSON output (adds format: 'json'). */
  async commandJson<T = unknown>(target: 'mon' | 'mgr', cmd: Record<string, unknown>): Promise<T> {
    const { out } = await this.command(target, { format: 'json', ...cmd });
    const text = out.toString('utf8').trim();
    return (text === '' ? undefined : JSON.parse(text)) as T;
  }

  /** @internal */
  protected async release(h: ClusterHandle): Promise<void> {
    await native.closeConnection(h);
  }
}
