/**
 * Reads the rule files and promtool test files in this folder for the checks in
 * test/prometheus-rules.test.ts and test/grafana-dashboard.test.ts (metric names, alert
 * metadata, test coverage). A deliberately narrow YAML reader for the layout these files use
 * (block mappings, `|` block scalars, one-line `key: value`); it throws on anything else rather
 * than guess. promtool remains the judge of validity: the test also compares the rule count
 * this reader finds with the count promtool reports.
 */
import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const PROMETHEUS_DIR = fileURLToPath(new URL('.', import.meta.url));
export const RULE_FILES = readdirSync(PROMETHEUS_DIR).filter((f) => f.endsWith('.yml')).sort();
export const TEST_FILES = readdirSync(path.join(PROMETHEUS_DIR, 'tests')).filter((f) => f.endsWith('.yml')).sort().map((f) => path.join('tests', f));

export interface RuleDef {
  file: string;
  line: number;
  group: string;
  kind: 'alert' | 'record';
  name: string;
  expr: string;
  for?: string;
  labels: Record<string, string>;
  annotations: Record<string, string>;
}

const indentOf = (l: string) => l.length - l.trimStart().length;
const isBlankOrComment = (l: string) => l.trim() === '' || l.trim().startsWith('#');

function scalar(raw: string, where: string): string {
  const v = raw.trim();
  if (v.startsWith('"')) {
    try {
      return JSON.parse(v) as string;
    } catch (err) {
      throw new Error(`${where}: expected a double-quoted string this reader understands (JSON escapes), got ${v}`, { cause: err });
    }
  }
  if (v.startsWith("'")) return v.slice(1, -1).replaceAll("''", "'");
  return v;
}

/** The rules of one rule file (relative to this folder), in order. */
export function readRules(file: string): RuleDef[] {
  const lines = readFileSync(path.join(PROMETHEUS_DIR, file), 'utf8').split('\n');
  const rules: RuleDef[] = [];
  let group = '';
  let rule: RuleDef | undefined;
  let keyIndent = -1;
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    const where = `${file}:${i + 1}`;
    if (isBlankOrComment(line)) continue;
    const start = /^(\s*)- (alert|record): (.+)$/.exec(line);
    if (start) {
      rule = { file, line: i + 1, group, kind: start[2] as 'alert' | 'record', name: scalar(start[3], where), expr: '', labels: {}, annotations: {} };
      rules.push(rule);
      keyIndent = start[1].length + 2;
      continue;
    }
    const groupName = /^\s*- name: (.+)$/.exec(line);
    if (groupName) {
      group = scalar(groupName[1], where);
      rule = undefined;
      continue;
    }
    if (!rule || indentOf(line) < keyIndent) {
      if (/^\s*(groups|rules):\s*$/.test(line)) continue;
      throw new Error(`${where}: unexpected line outside a rule: ${line.trim()}`);
    }
    if (indentOf(line) !== keyIndent) throw new Error(`${where}: expected a rule key at indent ${keyIndent}, got: ${line.trim()}`);
    const kv = /^\s*([a-z_]+):\s*(.*)$/.exec(line);
    if (!kv) throw new Error(`${where}: expected "key: value", got: ${line.trim()}`);
    const [, key, value] = kv;
    // Lines that belong to this key: more indented than it (blank lines included).
    const body: string[] = [];
    while (i + 1 < lines.length && (lines[i + 1].trim() === '' || indentOf(lines[i + 1]) > keyIndent)) body.push(lines[++i]);
    if (key === 'expr') {
      if (value === '|' || value === '|-') {
        const nonBlank = body.filter((l) => l.trim() !== '');
        const cut = Math.min(...nonBlank.map(indentOf));
        rule.expr = nonBlank.map((l) => l.slice(cut)).join('\n');
      } else if (body.every((l) => l.trim() === '')) rule.expr = scalar(value, where);
      else throw new Error(`${where}: multi-line expr must be a "|" block scalar`);
    } else if (key === 'for' || key === 'keep_firing_for') {
      rule.for = scalar(value, where);
    } else if (key === 'labels' || key === 'annotations') {
      if (value !== '') throw new Error(`${where}: ${key} must be a block mapping`);
      for (const l of body) {
        if (isBlankOrComment(l)) continue;
        const entry = /^\s*([A-Za-z_][A-Za-z0-9_]*):\s*(.+)$/.exec(l);
        if (!entry) throw new Error(`${where}: expected "name: value" under ${key}, got: ${l.trim()}`);
        rule[key][entry[1]] = scalar(entry[2], where);
      }
    } else {
      throw new Error(`${where}: unknown rule key "${key}" (expected expr, for, labels, annotations)`);
    }
  }
  return rules;
}

export interface AlertTestCase {
  file: string;
  line: number;
  alertname: string;
  /** True when the case expects at least one alert (exp_labels present). */
  expectsFiring: boolean;
}

/** The alert_rule_test cases of one promtool test file (relative to this folder). */
export function readAlertTestCases(file: string): AlertTestCase[] {
  const lines = readFileSync(path.join(PROMETHEUS_DIR, file), 'utf8').split('\n');
  const cases: AlertTestCase[] = [];
  for (let i = 0; i < lines.length; i++) {
    const m = /^(\s*)- alertname: (\S+)\s*$/.exec(lines[i]);
    if (!m) continue;
    let expectsFiring = false;
    let j = i + 1;
    for (; j < lines.length && (lines[j].trim() === '' || indentOf(lines[j]) > m[1].length); j++) {
      if (/^\s*- exp_labels:/.test(lines[j])) expectsFiring = true;
    }
    cases.push({ file, line: i + 1, alertname: m[2], expectsFiring });
  }
  return cases;
}
