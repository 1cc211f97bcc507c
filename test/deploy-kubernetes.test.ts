/**
 * deploy/kubernetes: the committed YAML is what the typed sources generate, every object passes
 * its model's validate() (the Kubernetes, KEDA and Prometheus Operator schemas), and our own
 * rules hold: every variable set is one rewrap reads and every one it reads is documented; what a
 * process needs is set, secrets come from Secrets; probes call the health routes on the ports the
 * processes serve them; resources are set; pods meet the `restricted` Pod Security Standard;
 * workers scale on the backlog with a grace period and cooldown derived from the lease settings.
 */
import { execFile, spawnSync } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { Registry } from 'prom-client';
import { parse, parseAllDocuments } from 'yaml';
import { describe, expect, it } from 'vitest';
import type { Model } from '@kubernetes-models/base';
import type { IContainer } from 'kubernetes-models/v1/Container';
import type { IPodSpec } from 'kubernetes-models/v1/PodSpec';
import { BASE, KUBERNETES_DIR, namespace, renderManifests } from '../deploy/kubernetes/build-manifests.ts';
import { prometheusRuleGroups } from '../deploy/kubernetes/scaling-monitoring.ts';
import { metricNamesIn } from '../deploy/prometheus/promql-names.ts';
import { HEALTH_PATHS } from '../src/metrics/health.ts';
import { serveMetrics } from '../src/metrics/metrics-server.ts';
import { ROOT, configEnvVars, readmeEnvVars } from './support/deploy-env.ts';

type K8sObject = { apiVersion: string; kind: string; metadata: { name: string; labels?: Record<string, string> }; spec?: any; data?: Record<string, string> };

const models: Model<unknown>[] = Object.values(BASE).flat();
const objects = models.map((m) => m.toJSON() as K8sObject);
const byKind = (kind: string) => objects.filter((o) => o.kind === kind);
const one = (kind: string, name: string) => {
  const o = objects.find((x) => x.kind === kind && x.metadata.name === name);
  if (!o) throw new Error(`no ${kind} ${name} in deploy/kubernetes/base`);
  return o;
};
const configMap = one('ConfigMap', 'rewrap-config');
const pods = [...byKind('Deployment'), ...byKind('Job')].map((o) => ({ name: o.metadata.name, spec: o.spec.template.spec as IPodSpec, labels: o.spec.template.metadata.labels as Record<string, string> }));
const containerOf = (name: string) => pods.find((p) => p.name === name)!.spec.containers[0];

/** The environment a container sees: its ConfigMap (envFrom) and its own env; values of secrets are marked. */
function envOf(c: IContainer): Map<string, string> {
  const env = new Map<string, string>();
  for (const from of c.envFrom ?? []) {
    const cm = one('ConfigMap', from.configMapRef!.name!);
    for (const [k, v] of Object.entries(cm.data ?? {})) env.set(k, v);
  }
  for (const e of c.env ?? []) env.set(e.name, e.value ?? (e.valueFrom?.secretKeyRef ? `<secret ${e.valueFrom.secretKeyRef.name}/${e.valueFrom.secretKeyRef.key}>` : '<from field>'));
  return env;
}

describe('deploy/kubernetes: generated, valid', () => {
  it('the committed YAML is exactly what build-manifests.ts generates, and nothing else is there', () => {
    const rendered = renderManifests();
    const committed = new Map<string, string>();
    const walk = (rel: string) => {
      for (const e of readdirSync(path.join(KUBERNETES_DIR, rel), { withFileTypes: true })) {
        const p = rel ? `${rel}/${e.name}` : e.name;
        if (e.isDirectory()) walk(p);
        else if (/\.ya?ml$/.test(e.name)) committed.set(p, readFileSync(path.join(KUBERNETES_DIR, p), 'utf8'));
      }
    };
    walk('');
    expect([...committed.keys()].sort()).toEqual([...rendered.keys()].sort());
    for (const [file, text] of rendered) {
      if (committed.get(file) !== text) throw new Error(`deploy/kubernetes/${file} is not what the sources generate: run \`npx tsx deploy/kubernetes/build-manifests.ts\` and commit the result`);
    }
  });

  it('every object passes its model\'s validate() (Kubernetes, KEDA, Prometheus Operator schemas)', () => {
    for (const m of [...models, namespace('rewrap')]) expect(() => m.validate(), `${(m as unknown as K8sObject).kind}`).not.toThrow();
    expect(objects.map((o) => o.kind).sort()).toEqual(
      ['ConfigMap', 'Deployment', 'Deployment', 'Deployment', 'Job', 'NetworkPolicy', 'NetworkPolicy', 'NetworkPolicy', 'NetworkPolicy', 'PodDisruptionBudget', 'PodDisruptionBudget', 'PodMonitor', 'PrometheusRule', 'ScaledObject', 'Service', 'ServiceAccount', 'ServiceMonitor'].sort(),
    );
    const kustomization = parse(readFileSync(path.join(KUBERNETES_DIR, 'base/kustomization.yaml'), 'utf8')) as { resources: string[] };
    expect(kustomization.resources.sort()).toEqual(Object.keys(BASE).sort());
  });

  const kubectl = spawnSync('kubectl', ['version', '--client'], { encoding: 'utf8' }).status === 0;
  it.skipIf(!kubectl)('each overlay builds with kustomize (kubectl kustomize): the whole base, in its namespace, with its image', async () => {
    for (const overlay of ['production', 'staging']) {
      const out = await new Promise<string>((resolve, reject) =>
        execFile('kubectl', ['kustomize', path.join(KUBERNETES_DIR, 'overlays', overlay)], { timeout: 60_000 }, (err, stdout, stderr) => (err ? reject(new Error(`${overlay}: ${stderr}`)) : resolve(stdout))),
      );
      const docs = parseAllDocuments(out).map((d) => d.toJS() as K8sObject & { metadata: { namespace?: string } });
      expect(docs.length).toBe(objects.length + 1);
      const ns = docs.find((d) => d.kind === 'Namespace')!;
      expect(ns.metadata.labels?.['pod-security.kubernetes.io/enforce']).toBe('restricted');
      for (const d of docs.filter((x) => x.kind !== 'Namespace')) expect(d.metadata.namespace, `${d.kind} ${d.metadata.name}`).toBe(ns.metadata.name);
      for (const d of docs.filter((x) => x.kind === 'Deployment' || x.kind === 'Job')) expect(d.spec.template.spec.containers[0].image).toMatch(/^registry\.example\.com\/rewrap:/);
    }
  });
});

describe('deploy/kubernetes: environment and secrets', () => {
  it('sets only variables src/config.ts reads, and the README documents every one it reads', () => {
    const known = configEnvVars();
    const documented = readmeEnvVars();
    expect([...known].filter((k) => !documented.has(k)), 'read by src/config.ts but not in the README configuration table').toEqual([]);
    for (const p of pods) {
      const c = p.spec.containers[0];
      const referenced = new Set((c.env ?? []).flatMap((e) => [...(e.value ?? '').matchAll(/\$\(([A-Z_]+)\)/g)].map((m) => m[1])));
      for (const k of envOf(c).keys()) if (!referenced.has(k)) expect(known.has(k), `${p.name}: ${k} is read by src/config.ts`).toBe(true);
    }
  });

  it('sets what each process needs', () => {
    for (const p of pods) {
      const env = envOf(p.spec.containers[0]);
      for (const k of ['DATABASE_URL', 'AWS_REGION']) expect(env.get(k), `${p.name}: ${k}`).toBeTruthy();
    }
    for (const name of ['rewrap-scheduler', 'rewrap-worker']) {
      const c = containerOf(name);
      const env = envOf(c);
      expect(env.get('REDIS_URL'), name).toBeTruthy();
      expect(env.get('REWRAP_METRICS_HOST'), name).toBe('0.0.0.0');
      expect(Number(env.get('REWRAP_METRICS_PORT')), name).toBe(c.ports!.find((x) => x.name === 'metrics')!.containerPort);
    }
    const api = envOf(containerOf('rewrap-api'));
    expect(api.get('REWRAP_API_TOKEN')).toMatch(/^<secret /);
    expect(api.get('REWRAP_API_READ_TOKEN')).toMatch(/^<secret /);
    expect(api.get('REWRAP_API_ALLOWED_HOSTS')!.split(',')).toContain(one('Service', 'rewrap-api').metadata.name);
  });

  it('references Secrets and never inlines one', () => {
    expect(byKind('Secret')).toEqual([]);
    const secretish = /(URL|TOKEN|SECRET|PASSWORD|ACCESS_KEY)/;
    for (const k of Object.keys(configMap.data ?? {})) expect(secretish.test(k) && k !== 'REWRAP_API_ALLOWED_HOSTS', `ConfigMap key ${k}`).toBe(false);
    for (const p of pods) {
      for (const e of p.spec.containers[0].env ?? []) {
        if (secretish.test(e.name) && e.name !== 'REWRAP_API_ALLOWED_HOSTS') expect(e.valueFrom?.secretKeyRef, `${p.name}: ${e.name}`).toBeDefined();
      }
    }
  });
});

describe('deploy/kubernetes: probes, resources, pod security', () => {
  it('probes call /healthz and /readyz on the port where the process serves them', async () => {
    const routes = Object.values(HEALTH_PATHS) as string[];
    for (const p of pods.filter((x) => x.name !== byKind('Job')[0].metadata.name)) {
      const c = p.spec.containers[0];
      expect(c.livenessProbe?.httpGet?.path, p.name).toBe(HEALTH_PATHS.live);
      expect(c.startupProbe?.httpGet?.path, p.name).toBe(HEALTH_PATHS.live);
      expect(c.readinessProbe?.httpGet?.path, p.name).toBe(HEALTH_PATHS.ready);
      for (const probe of [c.livenessProbe!, c.readinessProbe!, c.startupProbe!]) {
        const port = c.ports!.find((x) => x.name === probe.httpGet!.port);
        expect(port, `${p.name}: probe port ${probe.httpGet!.port}`).toBeDefined();
        if (p.name === 'rewrap-api') expect(String(port!.containerPort)).toBe(c.args![c.args!.indexOf('--port') + 1]);
        expect(probe.timeoutSeconds).toBeGreaterThanOrEqual(3);
      }
    }
    // The routes are real: the metrics server answers them (not 404).
    const server = await serveMetrics(new Registry(), 0, '127.0.0.1', { role: 'worker', checks: [] });
    try {
      for (const r of routes) expect((await fetch(server.url.replace('/metrics', r))).status, r).toBe(200);
    } finally {
      await server.close();
    }
  });

  it('every container sets CPU and memory requests and limits', () => {
    for (const p of pods) {
      const r = p.spec.containers[0].resources!;
      for (const k of ['cpu', 'memory']) {
        expect(r.requests?.[k], `${p.name} requests.${k}`).toBeDefined();
        expect(r.limits?.[k], `${p.name} limits.${k}`).toBeDefined();
      }
    }
  });

  it('every pod meets the restricted Pod Security Standard, on a read-only root filesystem', () => {
    for (const p of pods) {
      const s = p.spec;
      expect(s.hostNetwork || s.hostPID || s.hostIPC, p.name).toBeFalsy();
      expect(s.securityContext?.runAsNonRoot, p.name).toBe(true);
      expect(s.securityContext?.runAsUser, p.name).not.toBe(0);
      expect(s.securityContext?.seccompProfile?.type, p.name).toBe('RuntimeDefault');
      for (const v of s.volumes ?? []) expect(Object.keys(v).filter((k) => k !== 'name'), `${p.name} volume ${v.name}`).toEqual(expect.arrayContaining([expect.stringMatching(/^(emptyDir|configMap|secret|projected|downwardAPI|persistentVolumeClaim|ephemeral)$/)]));
      for (const c of [...s.containers, ...(s.initContainers ?? [])]) {
        const sc = c.securityContext!;
        expect(sc.allowPrivilegeEscalation, `${p.name}/${c.name}`).toBe(false);
        expect(sc.privileged ?? false).toBe(false);
        expect(sc.capabilities?.drop).toEqual(['ALL']);
        expect(sc.capabilities?.add ?? []).toEqual([]);
        expect(sc.readOnlyRootFilesystem).toBe(true);
        expect(c.volumeMounts?.map((m) => m.mountPath)).toContain('/tmp');
      }
    }
  });
});

describe('deploy/kubernetes: workloads', () => {
  it('a migration Job, two schedulers (one leads by the ledger lock) with a disruption budget', () => {
    const job = byKind('Job')[0];
    expect(job.spec.template.spec.containers[0].args).toEqual(['migrate']);
    expect(job.spec.template.spec.restartPolicy).toBe('OnFailure');
    expect(job.spec.backoffLimit).toBeGreaterThan(0);
    expect(one('Deployment', 'rewrap-scheduler').spec.replicas).toBe(2);
    expect(one('PodDisruptionBudget', 'rewrap-scheduler').spec.minAvailable).toBe(1);
    expect(one('Deployment', 'rewrap-api').spec.replicas).toBe(1);
  });

  it('workers: KEDA scales them 0..N on the running campaigns\' backlog; grace and cooldown let batches finish or be released', () => {
    const so = one('ScaledObject', 'rewrap-worker');
    const deployment = one('Deployment', 'rewrap-worker');
    expect(so.spec.scaleTargetRef).toMatchObject({ kind: 'Deployment', name: deployment.metadata.name });
    expect(deployment.spec.replicas, 'KEDA owns the replica count').toBeUndefined();
    expect(so.spec.minReplicaCount).toBe(0);
    expect(so.spec.maxReplicaCount).toBeGreaterThan(1);
    const trigger = so.spec.triggers[0];
    expect(trigger.type).toBe('prometheus');
    const backlogSrc = readFileSync(path.join(ROOT, 'src/metrics/backlog-metrics.ts'), 'utf8');
    for (const name of metricNamesIn(trigger.metadata.query)) expect(backlogSrc, `the query's ${name} is a backlog gauge`).toContain(`name: '${name}'`);
    expect(trigger.metadata.query).toContain('state="running"');

    const env = envOf(containerOf('rewrap-worker'));
    const drainSeconds = (Number(env.get('REWRAP_SHUTDOWN_TIMEOUT_MS')) + Number(env.get('REWRAP_LEASE_MS'))) / 1000;
    const grace = deployment.spec.template.spec.terminationGracePeriodSeconds as number;
    expect(grace).toBeGreaterThanOrEqual(drainSeconds);
    expect(so.spec.cooldownPeriod).toBeGreaterThanOrEqual(grace);
    expect(so.spec.advanced.horizontalPodAutoscalerConfig.behavior.scaleDown.stabilizationWindowSeconds).toBeGreaterThanOrEqual(grace);
    expect(one('PodDisruptionBudget', 'rewrap-worker').spec.maxUnavailable).toBe(1);
  });

  it('the API behind a Service with a ServiceMonitor; workers and schedulers scraped by a PodMonitor; the PrometheusRule is deploy/prometheus', () => {
    const svc = one('Service', 'rewrap-api');
    const apiPod = pods.find((p) => p.name === 'rewrap-api')!;
    for (const [k, v] of Object.entries(svc.spec.selector as Record<string, string>)) expect(apiPod.labels[k]).toBe(v);
    expect(apiPod.spec.containers[0].ports!.map((p) => p.name)).toContain(svc.spec.ports[0].targetPort);
    const sm = one('ServiceMonitor', 'rewrap-api');
    for (const [k, v] of Object.entries(sm.spec.selector.matchLabels as Record<string, string>)) expect(svc.metadata.labels![k]).toBe(v);
    expect(svc.spec.ports.map((p: { name: string }) => p.name)).toContain(sm.spec.endpoints[0].port);
    const pm = one('PodMonitor', 'rewrap-processes');
    for (const name of ['rewrap-worker', 'rewrap-scheduler']) expect(containerOf(name).ports!.map((p) => p.name)).toContain(pm.spec.podMetricsEndpoints[0].port);
    const fromFiles = ['recording.yml', 'alerts.yml'].flatMap((f) => (parse(readFileSync(path.join(ROOT, 'deploy/prometheus', f), 'utf8')) as { groups: unknown[] }).groups);
    expect(one('PrometheusRule', 'rewrap').spec.groups).toEqual(fromFiles);
    expect(prometheusRuleGroups().length).toBeGreaterThan(0);
  });

  it('NetworkPolicies: deny by default; Prometheus may scrape, API clients may call the API, pods reach DNS and their services', () => {
    const policies = byKind('NetworkPolicy');
    const deny = policies.find((p) => !p.spec.ingress && !p.spec.egress && p.spec.policyTypes.includes('Ingress') && p.spec.policyTypes.includes('Egress'));
    expect(deny?.spec.podSelector).toEqual({ matchLabels: { 'app.kubernetes.io/part-of': 'rewrap' } });
    for (const p of pods) expect(p.labels['app.kubernetes.io/part-of'], p.name).toBe('rewrap');
    const ingressPorts = policies.flatMap((p) => (p.spec.ingress ?? []).flatMap((r: { ports: { port: number }[] }) => r.ports.map((x) => x.port)));
    expect(ingressPorts.sort()).toEqual([Number(configMap.data!.REWRAP_METRICS_PORT), containerOf('rewrap-api').ports![0].containerPort].sort());
    const egressPorts = policies.flatMap((p) => (p.spec.egress ?? []).flatMap((r: { ports: { port: number }[] }) => r.ports.map((x) => x.port)));
    expect(egressPorts).toEqual(expect.arrayContaining([53, 5432, 6379, 443]));
  });
});
