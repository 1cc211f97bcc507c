/**
 * Typed builders for the panels of the rewrap dashboard. The dashboard is written in TypeScript
 * against @grafana/schema (Grafana's published dashboard and panel types), so a field Grafana does
 * not know, a missing required option or a wrong enum value fails `tsc`; rewrap-dashboard.json is
 * generated from it (build-dashboard.ts) and a test checks the two are identical.
 */
import {
  BigValueColorMode,
  BigValueGraphMode,
  BigValueJustifyMode,
  BigValueTextMode,
  FieldColorModeId,
  GraphDrawStyle,
  GraphThresholdsStyleMode,
  LegendDisplayMode,
  PercentChangeColorMode,
  SortOrder,
  StackingMode,
  ThresholdsMode,
  TooltipDisplayMode,
  VizOrientation,
  type DataQuery,
  type DataSourceRef,
  type FieldConfigSource,
  type GraphFieldConfig,
  type GridPos,
  type Panel,
  type RowPanel,
  type ThresholdsConfig,
} from '@grafana/schema';
import type { Options as StatOptions } from '@grafana/schema/dist/esm/raw/composable/stat/panelcfg/x/StatPanelCfg_types.gen';
import type { Options as TimeSeriesOptions } from '@grafana/schema/dist/esm/raw/composable/timeseries/panelcfg/x/TimeSeriesPanelCfg_types.gen';

/** The Prometheus data source chosen in the dashboard's `datasource` variable. */
export const PROMETHEUS: DataSourceRef = { type: 'prometheus', uid: '${datasource}' };

/**
 * A Prometheus query as Grafana stores it. @grafana/schema types the common part (DataQuery:
 * refId, datasource, hide); the Prometheus plugin's own fields are declared here.
 */
export interface PrometheusQuery extends DataQuery {
  expr: string;
  legendFormat?: string;
  range?: boolean;
  instant?: boolean;
}

export interface QuerySpec {
  expr: string;
  legend?: string;
}

/** Panel ids and positions are assigned in order by the dashboard (see layout()). */
export type PanelDraft = Omit<Panel, 'id' | 'gridPos'> & { size: { w: number; h: number } };

function targets(queries: QuerySpec[]): PrometheusQuery[] {
  return queries.map((q, i) => ({
    refId: String.fromCharCode(65 + i),
    datasource: PROMETHEUS,
    expr: q.expr,
    legendFormat: q.legend ?? '__auto',
    range: true,
  }));
}

function thresholds(steps: { color: string; value: number | null }[]): ThresholdsConfig {
  return { mode: ThresholdsMode.Absolute, steps };
}

const NO_THRESHOLDS = thresholds([{ color: 'green', value: null }]);

export interface TimeSeriesSpec {
  title: string;
  description: string;
  queries: QuerySpec[];
  unit?: string;
  stacked?: boolean;
  min?: number;
  max?: number;
  /** Drawn as a dashed line (e.g. the SLO objective). */
  thresholdLine?: { value: number; color: string };
  w?: number;
  h?: number;
}

export function timeSeries(s: TimeSeriesSpec): PanelDraft {
  const options: TimeSeriesOptions = {
    legend: { showLegend: true, displayMode: LegendDisplayMode.List, placement: 'bottom', calcs: [] },
    tooltip: { mode: TooltipDisplayMode.Multi, sort: SortOrder.Descending },
  };
  const fieldConfig: FieldConfigSource = {
    defaults: {
      unit: s.unit ?? 'short',
      color: { mode: FieldColorModeId.PaletteClassic },
      thresholds: s.thresholdLine
        ? thresholds([{ color: 'green', value: null }, { color: s.thresholdLine.color, value: s.thresholdLine.value }])
        : NO_THRESHOLDS,
      custom: {
        drawStyle: GraphDrawStyle.Line,
        lineWidth: 1,
        fillOpacity: s.stacked ? 30 : 0,
        stacking: { mode: s.stacked ? StackingMode.Normal : StackingMode.None, group: 'A' },
        thresholdsStyle: { mode: s.thresholdLine ? GraphThresholdsStyleMode.Dashed : GraphThresholdsStyleMode.Off },
      } satisfies GraphFieldConfig,
      ...(s.min !== undefined ? { min: s.min } : {}),
      ...(s.max !== undefined ? { max: s.max } : {}),
    },
    overrides: [],
  };
  return {
    type: 'timeseries',
    title: s.title,
    description: s.description,
    datasource: PROMETHEUS,
    targets: targets(s.queries) as unknown as Panel['targets'],
    options: options as unknown as Record<string, unknown>,
    fieldConfig,
    size: { w: s.w ?? 12, h: s.h ?? 8 },
  };
}

export interface StatSpec {
  title: string;
  description: string;
  queries: QuerySpec[];
  unit?: string;
  /** Colour steps: the first has value null (the base colour). */
  steps?: { color: string; value: number | null }[];
  w?: number;
  h?: number;
}

export function stat(s: StatSpec): PanelDraft {
  const options: StatOptions = {
    reduceOptions: { calcs: ['lastNotNull'], fields: '', values: false },
    orientation: VizOrientation.Auto,
    textMode: BigValueTextMode.Auto,
    colorMode: BigValueColorMode.Value,
    graphMode: BigValueGraphMode.Area,
    justifyMode: BigValueJustifyMode.Auto,
    percentChangeColorMode: PercentChangeColorMode.Standard,
    showPercentChange: false,
    wideLayout: true,
  };
  return {
    type: 'stat',
    title: s.title,
    description: s.description,
    datasource: PROMETHEUS,
    targets: targets(s.queries) as unknown as Panel['targets'],
    options: options as unknown as Record<string, unknown>,
    fieldConfig: {
      defaults: {
        unit: s.unit ?? 'short',
        color: { mode: FieldColorModeId.Thresholds },
        thresholds: thresholds(s.steps ?? [{ color: 'green', value: null }]),
      },
      overrides: [],
    },
    size: { w: s.w ?? 6, h: s.h ?? 4 },
  };
}

export interface Section {
  title: string;
  panels: PanelDraft[];
}

/**
 * Lays sections out top to bottom: a row header per section, then its panels left to right,
 * wrapping at Grafana's 24-column grid. Ids are unique and stable (in order of appearance).
 */
export function layout(sections: Section[]): Array<Panel | RowPanel> {
  const out: Array<Panel | RowPanel> = [];
  let id = 1;
  let y = 0;
  for (const section of sections) {
    const row: RowPanel = { type: 'row', id: id++, title: section.title, collapsed: false, panels: [], gridPos: { x: 0, y, w: 24, h: 1 } };
    out.push(row);
    y += 1;
    let x = 0;
    let rowHeight = 0;
    for (const { size, ...panel } of section.panels) {
      if (x + size.w > 24) {
        y += rowHeight;
        x = 0;
        rowHeight = 0;
      }
      const gridPos: GridPos = { x, y, w: size.w, h: size.h };
      out.push({ ...panel, id: id++, gridPos });
      x += size.w;
      rowHeight = Math.max(rowHeight, size.h);
    }
    y += rowHeight;
  }
  return out;
}
