/**
 * rewrap's workloads: the ConfigMap of non-secret settings, the ServiceAccount, the migration
 * Job, the scheduler (2 replicas, one active by the ledger's advisory lock), the workers and the
 * API with its Service, and the PodDisruptionBudgets. Every pod meets the `restricted` Pod
 * Security Standard and runs on a read-only root filesystem.
 */
import { ConfigMap } from 'kubernetes-models/v1/ConfigMap';
import { Service } from 'kubernetes-models/v1/Service';
import { ServiceAccount } from 'kubernetes-models/v1/ServiceAccount';
import type { IContainer } from 'kubernetes-models/v1/Container';
import type { IEnvVar } from 'kubernetes-models/v1/EnvVar';
import type { IPodSpec } from 'kubernetes-models/v1/PodSpec';
import type { IProbe } from 'kubernetes-models/v1/Probe';
import { Deployment } from 'kubernetes-models/apps/v1/Deployment';
import { Job } from 'kubernetes-models/batch/v1/Job';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1/PodDisruptionBudget';
import { HEALTH_PATHS } from '../../src/metrics/health.ts';
import {
  API_PORT, CONFIG_MAP, IMAGE, LEASE_MS, METRICS_PORT, PART_OF, RUN_AS_UID, SECRETS, SHUTDOWN_TIMEOUT_MS, VERSION, WORKER_GRACE_SECONDS,
} from './settings.ts';

export type Component = 'migrate' | 'scheduler' | 'worker' | 'api';

export function labels(component: Component): Record<string, string> {
  return { 'app.kubernetes.io/name': 'rewrap', 'app.kubernetes.io/component': component, 'app.kubernetes.io/part-of': PART_OF };
}
const selector = (component: Component) => ({ matchLabels: { 'app.kubernetes.io/name': 'rewrap', 'app.kubernetes.io/component': component } });
const meta = (name: string, component: Component) => ({ name, labels: { ...labels(component), 'app.kubernetes.io/version': VERSION } });

/** Non-secret settings shared by every rewrap container (envFrom). */
export const configMap = new ConfigMap({
  metadata: { name: CONFIG_MAP, labels: { 'app.kubernetes.io/part-of': PART_OF } },
  data: {
    AWS_REGION: 'eu-west-1',
    LOG_LEVEL: 'info',
    REWRAP_QUEUE_PREFIX: '{rewrap}',
    // /metrics, /healthz, /readyz of workers and the scheduler, reachable by the kubelet and Prometheus.
    REWRAP_METRICS_HOST: '0.0.0.0',
    REWRAP_METRICS_PORT: String(METRICS_PORT),
    // Stated, not defaulted: the worker's terminationGracePeriodSeconds is derived from them.
    REWRAP_LEASE_MS: String(LEASE_MS),
    REWRAP_SHUTDOWN_TIMEOUT_MS: String(SHUTDOWN_TIMEOUT_MS),
  },
});

export const serviceAccount = new ServiceAccount({
  metadata: { name: 'rewrap', labels: { 'app.kubernetes.io/part-of': PART_OF } },
  // No Kubernetes API calls: no token in the pods. (On EKS, annotate for IRSA in an overlay.)
  automountServiceAccountToken: false,
});

const secretEnv = (name: string, secret: string, key = name): IEnvVar => ({ name, valueFrom: { secretKeyRef: { name: secret, key } } });

/** Ledger and Redis: URLs carry passwords, so they come from a Secret. */
const connectionEnv: IEnvVar[] = [secretEnv('DATABASE_URL', SECRETS.connections), secretEnv('REDIS_URL', SECRETS.connections)];

const securityContext = {
  allowPrivilegeEscalation: false,
  readOnlyRootFilesystem: true,
  runAsNonRoot: true,
  runAsUser: RUN_AS_UID,
  runAsGroup: RUN_AS_UID,
  capabilities: { drop: ['ALL'] },
  seccompProfile: { type: 'RuntimeDefault' as const },
};

function probe(path: string, port: string, periodSeconds: number, failureThreshold: number): IProbe {
  return { httpGet: { path, port }, periodSeconds, timeoutSeconds: 5, failureThreshold };
}

function container(component: Component, args: string[], resources: IContainer['resources'], env: IEnvVar[], port?: { name: string; containerPort: number }): IContainer {
  return {
    name: component,
    image: IMAGE,
    imagePullPolicy: 'IfNotPresent',
    args,
    envFrom: [{ configMapRef: { name: CONFIG_MAP } }],
    env,
    ports: port ? [{ ...port, protocol: 'TCP' }] : undefined,
    resources,
    securityContext,
    volumeMounts: [{ name: 'tmp', mountPath: '/tmp' }],
    // Alive: the process answers (no dependency: a database outage must not restart every pod).
    // Ready: ledger migrated, Redis up. Startup: migrations may take a while on a first deploy.
    ...(port && {
      startupProbe: probe(HEALTH_PATHS.live, port.name, 5, 60),
      livenessProbe: probe(HEALTH_PATHS.live, port.name, 20, 3),
      readinessProbe: probe(HEALTH_PATHS.ready, port.name, 10, 3),
    }),
  };
}

function podSpec(c: IContainer, terminationGracePeriodSeconds: number, restartPolicy: 'Always' | 'OnFailure' = 'Always'): IPodSpec {
  return {
    serviceAccountName: 'rewrap',
    automountServiceAccountToken: false,
    enableServiceLinks: false,
    restartPolicy,
    terminationGracePeriodSeconds,
    securityContext: { runAsNonRoot: true, runAsUser: RUN_AS_UID, runAsGroup: RUN_AS_UID, fsGroup: RUN_AS_UID, seccompProfile: { type: 'RuntimeDefault' } },
    containers: [c],
    volumes: [{ name: 'tmp', emptyDir: { medium: 'Memory', sizeLimit: '64Mi' } }],
  };
}

const metricsPort = { name: 'metrics', containerPort: METRICS_PORT };

/**
 * The migration Job. Its name carries the version: a Job's pod template cannot change, so each
 * release applies a new Job (the processes also migrate at start, idempotently, under a lock;
 * the Job makes a failing migration visible on its own and before the rollout).
 */
export const migrateJob = new Job({
  metadata: meta(`rewrap-migrate-${VERSION.replaceAll('.', '-')}`, 'migrate'),
  spec: {
    backoffLimit: 6,
    activeDeadlineSeconds: 1800,
    ttlSecondsAfterFinished: 86_400,
    template: {
      metadata: { labels: labels('migrate') },
      spec: podSpec(container('migrate', ['migrate'], { requests: { cpu: '50m', memory: '128Mi' }, limits: { cpu: '500m', memory: '256Mi' } }, connectionEnv), 30, 'OnFailure'),
    },
  },
});

/** Two schedulers: one leads (the ledger's advisory lock), the other stands by and takes over within seconds. */
export const scheduler = new Deployment({
  metadata: meta('rewrap-scheduler', 'scheduler'),
  spec: {
    replicas: 2,
    selector: selector('scheduler'),
    // Never two new ones at once: the standby keeps the lock warm while the other restarts.
    strategy: { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: 1, maxSurge: 0 } },
    template: {
      metadata: { labels: labels('scheduler') },
      spec: podSpec(container('scheduler', ['scheduler'], { requests: { cpu: '100m', memory: '256Mi' }, limits: { cpu: '1', memory: '512Mi' } }, connectionEnv, metricsPort), 30),
    },
  },
});

/** Workers: the replica count is KEDA's (scaling.ts); `replicas` is left out so that applying the manifest does not fight it. */
export const worker = new Deployment({
  metadata: meta('rewrap-worker', 'worker'),
  spec: {
    selector: selector('worker'),
    strategy: { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: '25%', maxSurge: '25%' } },
    template: {
      metadata: { labels: labels('worker') },
      spec: podSpec(container('worker', ['worker'], { requests: { cpu: '500m', memory: '512Mi' }, limits: { cpu: '2', memory: '1Gi' } }, connectionEnv, metricsPort), WORKER_GRACE_SECONDS),
    },
  },
});

/** One API replica: it exports the backlog gauges once per deployment (deploy/README.md). */
export const api = new Deployment({
  metadata: meta('rewrap-api', 'api'),
  spec: {
    replicas: 1,
    selector: selector('api'),
    template: {
      metadata: { labels: labels('api') },
      spec: podSpec(
        container('api', ['api', '--host', '0.0.0.0', '--port', String(API_PORT)], { requests: { cpu: '100m', memory: '256Mi' }, limits: { cpu: '1', memory: '512Mi' } }, [
          // Only for the $(POD_NAMESPACE) below (rewrap does not read it).
          { name: 'POD_NAMESPACE', valueFrom: { fieldRef: { fieldPath: 'metadata.namespace' } } },
          secretEnv('DATABASE_URL', SECRETS.connections),
          secretEnv('REWRAP_API_TOKEN', SECRETS.apiTokens, 'write-token'),
          secretEnv('REWRAP_API_READ_TOKEN', SECRETS.apiTokens, 'read-token'),
          // Clients reach it by its Service name; the API refuses other Host names (DNS rebinding).
          { name: 'REWRAP_API_ALLOWED_HOSTS', value: 'rewrap-api,rewrap-api.$(POD_NAMESPACE).svc,rewrap-api.$(POD_NAMESPACE).svc.cluster.local' },
        ], { name: 'http', containerPort: API_PORT }),
        30,
      ),
    },
  },
});

export const apiService = new Service({
  metadata: { name: 'rewrap-api', labels: labels('api') },
  spec: { type: 'ClusterIP', selector: selector('api').matchLabels, ports: [{ name: 'http', port: API_PORT, targetPort: 'http', protocol: 'TCP' }] },
});

/** Evictions (node drains) take one worker at a time: each drains its batches first; one scheduler always stays. */
export const disruptionBudgets = [
  new PodDisruptionBudget({ metadata: { name: 'rewrap-worker', labels: labels('worker') }, spec: { maxUnavailable: 1, selector: selector('worker') } }),
  new PodDisruptionBudget({ metadata: { name: 'rewrap-scheduler', labels: labels('scheduler') }, spec: { minAvailable: 1, selector: selector('scheduler') } }),
];
