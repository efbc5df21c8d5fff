// Moved to diff-export.ts and diff-import.ts; re-exported here until lib/cli imports those.
export { exportDiff, isZero, type ExportDiffOptions, type ExportProgress } from './diff-export.js';
export { importDiff, type ImportDiffOptions, type ImportDiffResult, type ImportProgress } from './diff-import.js';
