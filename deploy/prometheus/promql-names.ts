/**
 * Metric names referenced by a PromQL expression: every identifier that is not a function call,
 * a keyword, a label name (inside {...}, by/without/on/ignoring/group_x(...)), a string, a
 * duration or a Grafana variable. Good enough for our own rules and dashboard queries; not a
 * PromQL parser (promtool checks syntax).
 */
const KEYWORDS = new Set(['and', 'or', 'unless', 'by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'bool', 'offset', 'inf', 'nan', 'atan2']);

export function metricNamesIn(expr: string): string[] {
  const stripped = expr
    .replace(/#.*$/gm, ' ') // PromQL comments
    .replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g, '""') // strings (may hold braces)
    .replace(/\{[^}]*\}/g, ' ') // label matchers
    .replace(/\[[^\]]*\]/g, ' ') // range and subquery selectors
    .replace(/\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ') // label lists
    .replace(/\$\{[^}]*\}|\$\w+/g, ' '); // Grafana variables ($__rate_interval, ${datasource})
  const names = new Set<string>();
  for (const m of stripped.matchAll(/(?<![\w.:])([A-Za-z_:][\w:]*)(?![\w:])(?!\s*\()/g)) {
    if (!KEYWORDS.has(m[1].toLowerCase())) names.add(m[1]);
  }
  return [...names];
}

/** Values a label is matched against (=, !=, =~, !~), split on top-level `|` for regexes. */
export function labelMatcherValues(expr: string, label: string): { op: string; values: string[] }[] {
  const out: { op: string; values: string[] }[] = [];
  for (const m of expr.matchAll(new RegExp(`[{,]\\s*${label}\\s*(=~|!~|!=|=)\\s*"((?:[^"\\\\]|\\\\.)*)"`, 'g'))) {
    out.push({ op: m[1], values: m[1].endsWith('~') ? m[2].split('|') : [m[2]] });
  }
  return out;
}
