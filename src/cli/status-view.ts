/** Human rendering of a campaign's progress, and the live `--watch` view. */
import type pg from 'pg';
import { campaignProgress, failureCountsByReason, getCampaign, noncurrentCounts } from '../ledger/index.ts';
import type { Campaign, CampaignProgress, CampaignSummary, NoncurrentCount, ReasonCount } from '../ledger/types.ts';
import { noncurrentStatus } from '../campaign/noncurrent-sweep.ts';
import { describeKeks, entriesToShow, keyMapCounts, type KeyMapCounts } from '../metrics/key-map-counts.ts';

export function progressBar(done: number, total: number, width = 30): string {
  const f = total > 0 ? Math.min(1, done / total) : 0;
  const n = Math.round(f * width);
  return `[${'#'.repeat(n)}${'-'.repeat(width - n)}] ${(f * 100).toFixed(1).padStart(5)}%`;
}

export function formatDuration(s: number | null): string {
  if (s === null || !Number.isFinite(s)) return '-';
  if (s < 60) return `${Math.ceil(s)}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${Math.ceil(s % 60)}s`;
  return `${Math.floor(s / 3600)}h${Math.floor((s % 3600) / 60)}m`;
}

export function progressLine(p: CampaignProgress): string {
  const done = p.rewrapped + p.skipped + p.failed;
  return `${progressBar(done, p.planned)} ${done}/${p.planned}${p.planDone ? '' : '+'}  ${p.doneRatePerSec.toFixed(0)}/s  ETA ${formatDuration(p.etaSeconds)}  rewrapped ${p.rewrapped} skipped ${p.skipped} failed ${p.failed}`;
}

export function renderStatus(c: Campaign, p: CampaignProgress, reasons: ReasonCount[], noncurrent: NoncurrentCount[] = [], keks?: KeyMapCounts, pruned: CampaignSummary | null = null): string {
  const k = describeKeks(c.spec);
  const lines = [
    `campaign ${c.id} "${c.name}" (${c.kind}) — ${stateWord(p)}${p.pauseReason ? ` (${p.pauseReason})` : ''}`,
    `  from ${k.from} to ${k.to}`,
    `  ${progressLine(p)}`,
    `  remaining ${p.remaining}; batches pending ${p.batches.pending}, in Redis ${p.batches.enqueued}, done ${p.batches.done}`,
  ];
  if (p.health.status === 'degraded') {
    const quiet = p.health.lastDoneAt ? `; last item done ${formatDuration((Date.now() - Date.parse(p.health.lastDoneAt)) / 1000)} ago` : '';
    lines.push(`  DEGRADED: ${p.health.retryingBatches} batches retrying with backoff (${p.health.reason})${quiet}; resumes by itself`);
  }
  if (keks) lines.push(...keyMapLines(c, keks));
  if (reasons.length) lines.push(`  failures: ${reasons.map((r) => `${r.reason} ${r.items}`).join(', ')}`);
  const n = noncurrentStatus(c, noncurrent);
  const stores = Object.entries(n.byStore);
  if (n.mode !== 'report' || stores.length > 0 || n.sweptAt) {
    const how = n.mode === 'keep' ? ' (kept: they do not block kek retire and become undecryptable once it retires)' : n.bypassGovernanceRetention ? ' (GOVERNANCE retention bypassed)' : '';
    lines.push(`  noncurrent versions under ${k.from}: "${n.mode}"${how}; sweep ${n.sweptAt ? `done ${n.sweptAt.toISOString()}` : 'not done yet'}`);
    for (const [store, states] of stores) lines.push(`    ${store}: ${Object.entries(states).map(([k, v]) => `${k} ${v}`).join(', ')}`);
  }
  if (pruned) {
    const t = (pruned.exposure as { totals?: Record<string, number> }).totals ?? {};
    lines.push(`  pruned ${pruned.prunedAt.toISOString()}: ${pruned.rowsDeleted} per-item row(s) deleted; archive ${pruned.archive ? `${pruned.archive.location} (${pruned.archive.bytes} bytes)` : 'none'}`);
    lines.push(`  exposure totals: under source ${t.underKek ?? 0}, moved ${t.moved ?? 0}, moved-unconfirmed ${t.movedUnconfirmed ?? 0}, exposed ${t.exposed ?? 0}`);
  }
  return lines.join('\n');
}

/** "running", or "degraded" while a running campaign's batches are being retried (CampaignHealth). */
const stateWord = (p: CampaignProgress) => (p.health.status === 'degraded' ? 'degraded' : p.state);

/** Per-KEK lines of a key-map campaign: every entry up to KEK_LABEL_LIMIT, else the ones with something left. */
function keyMapLines(c: Campaign, keks: KeyMapCounts): string[] {
  const shown = entriesToShow(keks);
  const pending = keks.keks.filter((e) => e.remaining > 0 || e.failed > 0).length;
  const lines = [`  per KEK (${keks.entries} entries; ${pending} with items left${shown.length < keks.entries ? `; the ${shown.length} worst shown, all: rewrap campaign report ${c.id} --kind keks` : ''}):`];
  for (const e of shown) lines.push(`    ${e.from} -> ${e.to}: moved ${e.moved}, remaining ${e.remaining}, failed ${e.failed}`);
  const o = keks.outsideMap;
  if (o.moved + o.remaining + o.failed > 0) lines.push(`    outside the map (or KEK unknown): remaining ${o.remaining}, failed ${o.failed}`);
  return lines;
}

/** Redraws until the campaign is completed or cancelled. */
export async function watchStatus(pool: pg.Pool, c: Campaign, intervalMs: number, json: boolean): Promise<void> {
  const tty = process.stdout.isTTY && !json;
  for (;;) {
    const p = await campaignProgress(pool, c.id);
    if (json) process.stdout.write(JSON.stringify({ id: c.id, at: new Date().toISOString(), ...p }) + '\n');
    else if (tty) process.stdout.write(`\r\x1b[2K${stateWord(p).padEnd(9)} ${progressLine(p)}`);
    else process.stdout.write(`${stateWord(p)} ${progressLine(p)}\n`);
    if (p.state === 'completed' || p.state === 'cancelled') break;
    await new Promise((r) => setTimeout(r, Math.max(100, intervalMs)));
  }
  if (tty) process.stdout.write('\n');
  const final = await getCampaign(pool, c.id);
  const reasons = await failureCountsByReason(pool, c.id);
  if (!json && final) {
    const keks = final.spec.keyMap ? await keyMapCounts(pool, c.id, final.spec) : undefined;
    process.stdout.write(renderStatus(final, await campaignProgress(pool, c.id), reasons, await noncurrentCounts(pool, c.id), keks) + '\n');
  }
}
