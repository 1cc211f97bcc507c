/**
 * Worker autoscaling on the backlog (KEDA, Prometheus scaler) and the Prometheus Operator
 * objects: a ServiceMonitor for the API (backlog gauges, exported once per deployment), a
 * PodMonitor for workers and schedulers (their own metrics, per process), and a PrometheusRule
 * holding deploy/prometheus/recording.yml and alerts.yml unchanged.
 */
import { readFileSync } from 'node:fs';
import { parse } from 'yaml';
import { ScaledObject } from '@kubernetes-models/keda/keda.sh/v1alpha1/ScaledObject';
import { PodMonitor } from '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PodMonitor';
import { PrometheusRule } from '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PrometheusRule';
import { ServiceMonitor } from '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/ServiceMonitor';
import { labels } from './workloads.ts';
import {
  BACKLOG_QUERY, ITEMS_PER_WORKER, PART_OF, PROMETHEUS_URL, WORKER_COOLDOWN_SECONDS, WORKER_MAX_REPLICAS, WORKER_SCALE_DOWN_WINDOW_SECONDS,
} from './settings.ts';

export const workerScaler = new ScaledObject({
  metadata: { name: 'rewrap-worker', labels: labels('worker') },
  spec: {
    scaleTargetRef: { apiVersion: 'apps/v1', kind: 'Deployment', name: 'rewrap-worker' },
    // 0 when no running campaign has items left; up to the maximum at ITEMS_PER_WORKER items each.
    minReplicaCount: 0,
    maxReplicaCount: WORKER_MAX_REPLICAS,
    pollingInterval: 15,
    cooldownPeriod: WORKER_COOLDOWN_SECONDS,
    advanced: {
      horizontalPodAutoscalerConfig: {
        behavior: {
          scaleDown: { stabilizationWindowSeconds: WORKER_SCALE_DOWN_WINDOW_SECONDS, policies: [{ type: 'Percent', value: 50, periodSeconds: 60 }] },
          scaleUp: { stabilizationWindowSeconds: 0, policies: [{ type: 'Pods', value: 4, periodSeconds: 30 }] },
        },
      },
    },
    triggers: [
      {
        type: 'prometheus',
        name: 'backlog',
        metricType: 'AverageValue',
        metadata: {
          serverAddress: PROMETHEUS_URL,
          query: BACKLOG_QUERY,
          threshold: String(ITEMS_PER_WORKER),
          // Any item of a running campaign wakes one worker from zero.
          activationThreshold: '0',
          // Prometheus unreachable: keep the workers there are rather than scaling them away.
          ignoreNullValues: 'false',
        },
      },
    ],
    fallback: { failureThreshold: 4, replicas: 2 },
  },
});

const monitorLabels = { 'app.kubernetes.io/part-of': PART_OF };

export const apiServiceMonitor = new ServiceMonitor({
  metadata: { name: 'rewrap-api', labels: labels('api') },
  spec: {
    selector: { matchLabels: { 'app.kubernetes.io/name': 'rewrap', 'app.kubernetes.io/component': 'api' } },
    endpoints: [{ port: 'http', path: '/metrics', interval: '30s', scrapeTimeout: '10s' }],
  },
});

/** Workers and schedulers are scraped pod by pod (no Service: nothing else connects to them). */
export const processPodMonitor = new PodMonitor({
  metadata: { name: 'rewrap-processes', labels: monitorLabels },
  spec: {
    selector: { matchExpressions: [{ key: 'app.kubernetes.io/component', operator: 'In', values: ['scheduler', 'worker'] }], matchLabels: { 'app.kubernetes.io/name': 'rewrap' } },
    podMetricsEndpoints: [{ port: 'metrics', path: '/metrics', interval: '30s' }],
  },
});

interface RuleFile {
  groups: { name: string; interval?: string; rules: Record<string, unknown>[] }[];
}

/** The rule files of deploy/prometheus, as they are (promtool tests them there). */
export function prometheusRuleGroups(): RuleFile['groups'] {
  return ['recording.yml', 'alerts.yml'].flatMap((f) => (parse(readFileSync(new URL(`../prometheus/${f}`, import.meta.url), 'utf8')) as RuleFile).groups);
}

export const prometheusRule = new PrometheusRule({
  metadata: { name: 'rewrap', labels: monitorLabels },
  spec: { groups: prometheusRuleGroups() as never },
});
