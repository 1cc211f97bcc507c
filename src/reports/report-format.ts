/** CSV and JSONL lines for reports: one header, one line per item, fields in a fixed order. */
import type { KekRecord } from '../ledger/types.ts';

export type ReportFormat = 'jsonl' | 'csv';

/**
 * One CSV cell. Item keys, failure details and KEK ids are user data: a cell starting with
 * = + - @ (or a tab or carriage return) is read as a formula by spreadsheet programs, so it is
 * neutralised with a leading apostrophe (OWASP's advice). The JSONL format keeps values exact.
 */
export function csvField(v: string): string {
  const safe = /^[=+\-@\t\r]/.test(v) ? `'${v}` : v;
  return /[",\n\r]/.test(safe) ? `"${safe.replace(/"/g, '""')}"` : safe;
}

export function kekText(k: KekRecord | null | undefined): string {
  return k ? (k.version !== undefined ? `${k.id}@${k.version}` : k.id) : '';
}

/** A report writer for rows of `columns`: the CSV header, and each row as a CSV or JSON line. */
export function lineWriter<T extends Record<string, string | number | null>>(format: ReportFormat, columns: (keyof T & string)[]) {
  return {
    header: format === 'csv' ? columns.join(',') : undefined,
    line: (row: T) => (format === 'csv' ? columns.map((c) => csvField(row[c] === null ? '' : String(row[c]))).join(',') : JSON.stringify(row)),
  };
}
