// Mirror enum tables and status-description parsing: no Ceph, no addon.
import { describe, expect, it } from 'vitest';
import {
  imageModeName, imageModeRaw, imageStateName, mirrorModeName, mirrorModeRaw, peerDirectionName, peerDirectionRaw, statusStateName,
} from '../../lib/mirror/types.js';
import { parseMirrorDescription } from '../../lib/mirror/status.js';

describe('mirror enum names', () => {
  it("map librbd's values, including those newer releases added (librbd.h of Tentacle)", () => {
    expect([0, 1, 2, 3].map(mirrorModeName)).toEqual(['disabled', 'image', 'pool', 'init-only']);
    expect([0, 1, 2, 3].map(imageStateName)).toEqual(['disabling', 'enabled', 'disabled', 'creating']);
    expect([0, 1].map(imageModeName)).toEqual(['journal', 'snapshot']);
    expect([0, 1, 2].map(peerDirectionName)).toEqual(['rx-only', 'tx-only', 'rx-tx']);
    expect(statusStateName(6)).toBe('stopped');
  });
  it("report a value they do not know as 'unknown', never as another state", () => {
    for (const f of [mirrorModeName, imageStateName, imageModeName, peerDirectionName, statusStateName]) {
      expect(f(99)).toBe('unknown');
      expect(f(-1)).toBe('unknown');
    }
  });
  it('settable names round-trip to their raw values', () => {
    for (const m of ['disabled', 'image', 'pool'] as const) expect(mirrorModeName(mirrorModeRaw(m))).toBe(m);
    for (const m of ['journal', 'snapshot'] as const) expect(imageModeName(imageModeRaw(m))).toBe(m);
    for (const d of ['rx-only', 'tx-only', 'rx-tx'] as const) expect(peerDirectionName(peerDirectionRaw(d))).toBe(d);
  });
});

describe('parseMirrorDescription', () => {
  it('splits the text from the replay JSON and types its fields', () => {
    const d = parseMirrorDescription('replaying, {"bytes_per_second":1024.0,"last_snapshot_sync_seconds":3,"replay_state":"idle"}');
    expect(d.text).toBe('replaying');
    expect(d.replay).toMatchObject({ bytesPerSecond: 1024, replayState: 'idle' });
  });
  it('keeps plain or malformed descriptions as text', () => {
    expect(parseMirrorDescription('local image is primary')).toEqual({ text: 'local image is primary' });
    expect(parseMirrorDescription('replaying, {not json')).toEqual({ text: 'replaying, {not json' });
    expect(parseMirrorDescription('x, [1,2]')).toEqual({ text: 'x, [1,2]' });
  });
});
