/** CSV and JSONL lines for reports: one header, one line per item, fields in a fixed order. */
import type { KekRecord } from '../ledger/types.ts';

export type ReportFormat = 'jsonl' | 'csv';

export function csvField(v: string): string {
  return /[",\n\r]/.test(v) ? `"${v.replace(/"/g, '""')}"` : v;
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
