/** The printed table: one block per scenario, one line per measured phase, then ratios vs targets. */
import { KINDS, type CpuSeconds } from './cpu-meter.ts';
import type { ScenarioResult } from './context.ts';

interface Meta {
  quick: boolean;
  totalSeconds: number;
  machine: { cores: number; cpu?: string; loadAverageAtEnd: number[] };
}

const num = (x: number) => x.toLocaleString('en', { maximumFractionDigits: 2 });
const pad = (s: string, n: number) => (s.length >= n ? s : s + ' '.repeat(n - s.length));
const lpad = (s: string, n: number) => (s.length >= n ? s : ' '.repeat(n - s.length) + s);

function isRatePhase(v: unknown): v is { items: number; itemsPerSec: number; seconds: number; cpu: CpuSeconds } {
  return typeof v === 'object' && v !== null && 'itemsPerSec' in v && 'cpu' in v;
}

/** All measured CPU (the bench process itself excluded) per item, in ms. */
function cpuPerItem(v: { items: number; cpu: CpuSeconds }): string {
  const total = KINDS.filter((k) => k !== 'bench').reduce((a, k) => a + v.cpu[k], 0);
  return v.items > 0 ? ((1000 * total) / v.items).toFixed(2) : '-';
}

export function formatTable(results: ScenarioResult[], meta: Meta): string {
  const out: string[] = [];
  out.push(`rewrap bench, ${meta.quick ? 'quick' : 'full'} mode, ${meta.totalSeconds} s; ${meta.machine.cores} cores (${meta.machine.cpu ?? '?'}), load average at end ${meta.machine.loadAverageAtEnd.join(' ')}`);
  out.push(`CPU seconds per process kind: ${KINDS.join(', ')} (s3 = radosgw + ceph-osd + ceph-mon; postgres = backends of this run)`);
  for (const r of results) {
    out.push('');
    out.push(`${r.id} ${r.title}  (${Object.entries(r.params).map(([k, v]) => `${k} ${typeof v === 'number' ? num(v) : String(v)}`).join(', ')})`);
    out.push(`  ${pad('phase', 26)}${lpad('items', 10)}${lpad('items/s', 10)}${lpad('wall s', 9)}${lpad('cpu ms/item', 12)}   ${KINDS.map((k) => lpad(k.slice(0, 6), 7)).join('')}`);
    for (const [name, v] of Object.entries(r.phases)) {
      if (isRatePhase(v)) {
        out.push(`  ${pad(name, 26)}${lpad(num(v.items), 10)}${lpad(num(v.itemsPerSec), 10)}${lpad(num(v.seconds), 9)}${lpad(cpuPerItem(v), 12)}   ${KINDS.map((k) => lpad(v.cpu[k].toFixed(1), 7)).join('')}`);
      }
    }
    for (const [name, v] of Object.entries(r.phases)) {
      if (!isRatePhase(v)) out.push(`  ${name}: ${typeof v === 'object' ? JSON.stringify(v) : String(v)}`);
    }
    const ratios = Object.entries(r.ratios).map(([k, v]) => `${k} = ${num(v)}`);
    if (ratios.length) out.push(`  ratios: ${ratios.join(', ')}`);
    for (const [k, t] of Object.entries(r.targets)) out.push(`  target ${k} ${t.target}: ${num(t.value)} ${t.met ? 'met' : 'MISSED'}`);
    for (const n of r.notes) out.push(`  note: ${n}`);
  }
  return out.join('\n');
}
