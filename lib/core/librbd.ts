// What the running librbd is (issue 12 adds its optional features here).
import { native } from '../binding/index.js';

/** Version of the librbd the addon runs with, e.g. '1.16.0' (librbd's own numbering). */
export const librbdVersion: string = native.librbdVersion;
