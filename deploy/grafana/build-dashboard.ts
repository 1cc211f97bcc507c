/** Writes deploy/grafana/rewrap-dashboard.json from dashboard.ts: `npx tsx deploy/grafana/build-dashboard.ts`. */
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { rewrapDashboard } from './dashboard.ts';

export const DASHBOARD_JSON_PATH = fileURLToPath(new URL('./rewrap-dashboard.json', import.meta.url));

export function renderDashboardJson(): string {
  return `${JSON.stringify(rewrapDashboard, null, 2)}\n`;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  writeFileSync(DASHBOARD_JSON_PATH, renderDashboardJson());
  console.log(`wrote ${DASHBOARD_JSON_PATH}`);
}
