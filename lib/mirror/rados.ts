// Cluster-wide mirroring: the site name and the mgr's mirror-snapshot schedules.
import type { Rados } from '../core/rados.js';
import type { ScheduleLevel, ScheduledImage, SnapshotScheduleLevel } from './types.js';
import { getSiteName, setSiteName } from './site.js';
import { addSnapshotSchedule, listSnapshotSchedules, removeSnapshotSchedule, snapshotScheduleStatus } from './schedule.js';

/** Mirroring operations on one cluster connection: `rados.mirror`. */
export class RadosMirror {
  /** @internal */
  constructor(readonly rados: Rados) {}

  /** This cluster's mirroring site name (defaults to its fsid). */
  getSiteName(): Promise<string> {
    return getSiteName(this.rados);
  }

  /** Sets this cluster's mirroring site name ('' restores the default). */
  setSiteName(name: string): Promise<void> {
    return setSiteName(this.rados, name);
  }

  /**
   * Adds a mirror-snapshot schedule at pool, namespace or image level. Schedules are kept by the
   * mgr's rbd_support module: where it is not running (Debian trixie's Reef mgr cannot load it),
   * this and the other schedule calls reject with ERR_MGR_MODULE_UNAVAILABLE.
   */
  addSnapshotSchedule(options: ScheduleLevel & { interval: string; startTime?: string }): Promise<void> {
    return addSnapshotSchedule(this.rados, options);
  }

  /** Removes schedules at a level: the one matching interval (and startTime), or all of them. */
  removeSnapshotSchedule(options: ScheduleLevel & { interval?: string; startTime?: string }): Promise<void> {
    return removeSnapshotSchedule(this.rados, options);
  }

  /** Schedules at a level (all levels below it too with `recursive`), sorted by level spec, then interval. */
  listSnapshotSchedules(options: ScheduleLevel & { recursive?: boolean } = {}): Promise<SnapshotScheduleLevel[]> {
    return listSnapshotSchedules(this.rados, options);
  }

  /** Images with a pending scheduled mirror snapshot, and when it is due. */
  snapshotScheduleStatus(options: ScheduleLevel = {}): Promise<ScheduledImage[]> {
    return snapshotScheduleStatus(this.rados, options);
  }
}
