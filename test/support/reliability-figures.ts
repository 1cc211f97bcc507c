/**
 * The figures of the reliability scenarios (README "Reliability"): each test prints one line
 * `reliability: {...}` and writes the same JSON to `$REWRAP_RELIABILITY_DIR` (default
 * `<tmpdir>/rewrap-reliability/`), one file per scenario, so a run's table can be collected:
 *   cat /tmp/rewrap-reliability/*.json
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface ReliabilityFigure {
  scenario: string;
  items: number;
  faults: string;
  /** Items not at the target KEK (or not decrypting) at the end: must be 0. */
  lost: number;
  /** Items written more than once, counted at the store (row-update log, S3 object versions). */
  duplicatedWrites: number;
  /** From the fault's start to the first sign of it (degraded state, an error answer, a timeout); null if not measured. */
  detectSeconds: number | null;
  /** From the fault's end to items moving again. */
  recoverSeconds: number | null;
  /** The test's own wall time (fixture creation excluded). */
  wallSeconds: number;
  [more: string]: unknown;
}

export const RELIABILITY_DIR = process.env.REWRAP_RELIABILITY_DIR || join(tmpdir(), 'rewrap-reliability');

export function recordFigure(f: ReliabilityFigure): void {
  const line = JSON.stringify({ ...f, at: new Date().toISOString() });
  console.log(`reliability: ${line}`);
  try {
    mkdirSync(RELIABILITY_DIR, { recursive: true });
    writeFileSync(join(RELIABILITY_DIR, `${f.scenario.replace(/[^a-z0-9]+/gi, '-').toLowerCase()}.json`), line + '\n');
  } catch (err) {
    console.warn(`reliability: could not write the figure to ${RELIABILITY_DIR}: ${(err as Error).message}`);
  }
}

/** Seconds since `t0` (Date.now()), one decimal. */
export const secondsSince = (t0: number, t = Date.now()): number => Math.round((t - t0) / 100) / 10;
