/**
 * The Prometheus rules in deploy/prometheus are valid (promtool check rules), behave as their
 * unit tests say (promtool test rules: every alert fires on its bad case and stays quiet on its
 * good ones), and carry what an on-call person needs (severity, summary, description, runbook).
 * promtool is a real binary (Debian package `prometheus`); no Prometheus server is involved.
 */
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { PROMETHEUS_DIR, RULE_FILES, TEST_FILES, readAlertTestCases, readRules, type RuleDef } from '../deploy/prometheus/rule-files.ts';
import { labelMatcherValues } from '../deploy/prometheus/promql-names.ts';
import { PERMANENT_REASONS, SKIP_REASONS, TRANSIENT_REASONS } from '../src/core/reasons.ts';

const INSTALL_HINT =
  'promtool is not installed. Install it with `apt-get install -y --no-install-recommends prometheus` ' +
  '(Debian/Ubuntu; the binary is /usr/bin/promtool), or put a promtool from https://prometheus.io/download/ on PATH. ' +
  '.ci/run installs it.';

function promtool(args: string[]): Promise<{ code: number; output: string }> {
  return new Promise((resolve, reject) => {
    execFile('promtool', args, { cwd: PROMETHEUS_DIR, timeout: 60_000 }, (err, stdout, stderr) => {
      const output = `${stdout}${stderr}`;
      if (!err) return resolve({ code: 0, output });
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return reject(new Error(INSTALL_HINT, { cause: err }));
      if (typeof err.code === 'number') return resolve({ code: err.code, output });
      reject(new Error(`promtool ${args.join(' ')} did not finish: ${err.message}\n${output}`, { cause: err }));
    });
  });
}

const rules: RuleDef[] = RULE_FILES.flatMap((f) => readRules(f));
const alerts = rules.filter((r) => r.kind === 'alert');

describe('deploy/prometheus rules', () => {
  it('promtool is installed', async () => {
    const r = await promtool(['--version']);
    expect(r.code, r.output).toBe(0);
  });

  it('promtool check rules accepts every rule file, and finds the rules this test reads', async () => {
    const r = await promtool(['check', 'rules', ...RULE_FILES]);
    if (r.code !== 0) throw new Error(`promtool check rules failed:\n${r.output}`);
    // "Checking alerts.yml\n  SUCCESS: 6 rules found": the narrow reader below must see the same rules.
    const counts = Object.fromEntries([...r.output.matchAll(/Checking (\S+)\s+SUCCESS: (\d+) rules found/g)].map((m) => [m[1], Number(m[2])]));
    expect(counts).toEqual(Object.fromEntries(RULE_FILES.map((f) => [f, rules.filter((x) => x.file === f).length])));
  });

  it('promtool test rules passes every unit test', async () => {
    expect(TEST_FILES.length).toBeGreaterThan(0);
    const r = await promtool(['test', 'rules', ...TEST_FILES]);
    if (r.code !== 0) throw new Error(`promtool test rules failed:\n${r.output}`);
    expect(r.output).not.toMatch(/FAILED/);
  });

  it('every alert has a unit test where it fires and one where it does not, and tests name only real alerts', () => {
    const cases = TEST_FILES.flatMap((f) => readAlertTestCases(f));
    const names = new Set(alerts.map((a) => a.name));
    expect(cases.filter((c) => !names.has(c.alertname)).map((c) => `${c.file}:${c.line} ${c.alertname}`)).toEqual([]);
    const missing: string[] = [];
    for (const a of alerts) {
      if (!cases.some((c) => c.alertname === a.name && c.expectsFiring)) missing.push(`${a.name}: no test case where it fires`);
      if (!cases.some((c) => c.alertname === a.name && !c.expectsFiring)) missing.push(`${a.name}: no test case where it stays quiet`);
    }
    expect(missing).toEqual([]);
  });

  it('every alert has a severity (page or ticket), a summary, a description and a runbook hint that the README explains', () => {
    const readme = readFileSync(path.join(PROMETHEUS_DIR, '..', 'README.md'), 'utf8');
    const problems: string[] = [];
    expect(alerts.length).toBeGreaterThanOrEqual(6);
    for (const a of alerts) {
      const where = `${a.file}:${a.line} ${a.name}`;
      if (!['page', 'ticket'].includes(a.labels.severity ?? '')) problems.push(`${where}: labels.severity must be page or ticket, got ${a.labels.severity}`);
      for (const k of ['summary', 'description', 'runbook']) if (!a.annotations[k]?.trim()) problems.push(`${where}: annotations.${k} is missing`);
      const anchor = `deploy/README.md#${a.name.toLowerCase()}`;
      if (!a.annotations.runbook?.includes(anchor)) problems.push(`${where}: runbook should point to ${anchor}`);
      if (!new RegExp(`^#+ ${a.name}\\s*$`, 'm').test(readme)) problems.push(`${where}: deploy/README.md has no "### ${a.name}" section`);
    }
    expect(problems).toEqual([]);
  });

  it('label values in rule expressions are ones the code emits (results, reason codes)', () => {
    const reasons = [...Object.keys(SKIP_REASONS), ...Object.keys(PERMANENT_REASONS), ...Object.keys(TRANSIENT_REASONS)];
    const results = ['rewrapped', 'skipped', 'failed', 'retry'];
    const problems: string[] = [];
    const check = (r: RuleDef, label: string, known: string[]) => {
      for (const { op, values } of labelMatcherValues(r.expr, label)) {
        for (const v of values) {
          // A regex alternative must match at least one known value; a literal must be one.
          const ok = op.endsWith('~') ? known.some((k) => new RegExp(`^(?:${v})$`).test(k)) : known.includes(v);
          if (!ok) problems.push(`${r.file}:${r.line} ${r.name}: ${label}${op}"${v}" matches no ${label} the code emits (${known.join(', ')})`);
        }
      }
    };
    for (const r of rules) {
      check(r, 'reason', reasons);
      check(r, 'result', results);
    }
    // The reader found the SLO's reason filter (so the check above checked something).
    expect(rules.some((r) => labelMatcherValues(r.expr, 'reason').length > 0)).toBe(true);
    expect(problems).toEqual([]);
  });
});
