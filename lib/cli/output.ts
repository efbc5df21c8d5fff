// What the CLI prints: byte sizes, JSON documents, progress (bar or JSON lines) on stderr.
import type { Writable } from 'node:stream';
import cliProgress from 'cli-progress';
import type { GlobalOpts } from './options.js';

const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
export function formatBytes(n: number): string {
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${i === 0 ? v : v.toFixed(v >= 100 ? 0 : v >= 10 ? 1 : 2)} ${units[i]}`;
}

export type ProgressMode = 'bar' | 'json' | 'off';

/**
 * Byte progress on stderr: a bar (TTY only: value/total, rate, ETA), or JSON lines for
 * supervisors (`--progress-json`: {"progress":{"image","bytesDone","bytesTotal","rate"}},
 * at most 10 a second), or nothing.
 */
export class ProgressBar {
  private bar: cliProgress.SingleBar | undefined;
  private t0 = Date.now();
  private started = false;
  private lastJson = 0;

  constructor(private readonly mode: ProgressMode, private readonly label: string) {
    if (mode !== 'bar') return;
    this.bar = new cliProgress.SingleBar(
      {
        format: `${label} [{bar}] {percentage}% | {done} / {all} | {rate}/s | ETA {eta_formatted}`,
        stream: process.stderr,
        hideCursor: true,
        clearOnComplete: false,
        etaBuffer: 20,
        fps: 5,
      },
      cliProgress.Presets.shades_classic,
    );
  }

  update(value: number, total: number): void {
    const rate = value / Math.max(0.001, (Date.now() - this.t0) / 1000);
    if (this.mode === 'json') {
      const now = Date.now();
      if (now - this.lastJson < 100 && value < total) return;
      this.lastJson = now;
      process.stderr.write(`${JSON.stringify({ progress: { image: this.label, bytesDone: value, bytesTotal: total, rate: Math.round(rate) } })}\n`);
      return;
    }
    if (!this.bar) return;
    const payload = { done: formatBytes(value), all: formatBytes(total), rate: formatBytes(rate) };
    if (!this.started) {
      this.started = true;
      this.bar.start(Math.max(total, 1), value, payload);
    } else {
      this.bar.setTotal(Math.max(total, 1));
      this.bar.update(value, payload);
    }
  }

  stop(): void {
    if (this.bar && this.started) this.bar.stop();
    this.bar = undefined;
  }
}

export function progressMode(g: GlobalOpts): ProgressMode {
  if (g.progressJson) return 'json';
  return process.stderr.isTTY && !g.json && g.progress !== false ? 'bar' : 'off';
}

/** Where machine output goes: stdout, unless stdout carries a stream. */
export function emitJson(value: unknown, to: Writable = process.stdout): void {
  to.write(`${JSON.stringify(value, null, 2)}\n`);
}

/** JSON destination for the current command (stderr when stdout carries a diff stream). */
export const jsonOutput: { sink: Writable } = { sink: process.stdout };

/** A forced round's discarded target changes, one line (the first few ranges as offset+length). */
export function formatDiscarded(target: string, d: { ranges: { offset: number; length: number }[]; count: number; bytes: number }): string {
  if (d.count === 0) return `discarded on ${target}: nothing (it had no changes of its own)\n`;
  const shown = d.ranges.slice(0, 8).map((r) => `${r.offset}+${r.length}`).join(', ');
  return `discarded on ${target}: ${d.count} range${d.count === 1 ? '' : 's'}, ${formatBytes(d.bytes)}: ${shown}${d.count > 8 ? ', …' : ''} (--json lists up to 1000)\n`;
}
