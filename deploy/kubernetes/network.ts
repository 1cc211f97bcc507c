/**
 * NetworkPolicies: rewrap's pods accept and open only the connections they need. Nothing
 * connects to workers and schedulers but Prometheus (and the kubelet's probes, which policies do
 * not filter); the API takes connections from Prometheus and from pods labelled
 * `rewrap-api-client: "true"` in the namespace (an ingress controller's namespace is added in an
 * overlay). Egress: DNS, Postgres, Redis and HTTPS (S3, KMS, STS); tighten the CIDRs in an overlay
 * where those addresses are known.
 */
import { NetworkPolicy } from 'kubernetes-models/networking.k8s.io/v1/NetworkPolicy';
import { API_PORT, EGRESS_PORTS, METRICS_PORT, MONITORING_NAMESPACE, PART_OF } from './settings.ts';

const allRewrap = { matchLabels: { 'app.kubernetes.io/part-of': PART_OF } };
const fromPrometheus = { namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': MONITORING_NAMESPACE } } };

export const networkPolicies = [
  new NetworkPolicy({
    metadata: { name: 'rewrap-default-deny', labels: { 'app.kubernetes.io/part-of': PART_OF } },
    spec: { podSelector: allRewrap, policyTypes: ['Ingress', 'Egress'] },
  }),
  new NetworkPolicy({
    metadata: { name: 'rewrap-egress', labels: { 'app.kubernetes.io/part-of': PART_OF } },
    spec: {
      podSelector: allRewrap,
      policyTypes: ['Egress'],
      egress: [
        { to: [{ namespaceSelector: {}, podSelector: { matchLabels: { 'k8s-app': 'kube-dns' } } }], ports: [{ protocol: 'UDP', port: 53 }, { protocol: 'TCP', port: 53 }] },
        { to: [{ ipBlock: { cidr: '0.0.0.0/0' } }], ports: Object.values(EGRESS_PORTS).map((port) => ({ protocol: 'TCP' as const, port })) },
      ],
    },
  }),
  new NetworkPolicy({
    metadata: { name: 'rewrap-metrics-ingress', labels: { 'app.kubernetes.io/part-of': PART_OF } },
    spec: {
      podSelector: { matchExpressions: [{ key: 'app.kubernetes.io/component', operator: 'In', values: ['scheduler', 'worker'] }], matchLabels: { 'app.kubernetes.io/name': 'rewrap' } },
      policyTypes: ['Ingress'],
      ingress: [{ from: [fromPrometheus], ports: [{ protocol: 'TCP', port: METRICS_PORT }] }],
    },
  }),
  new NetworkPolicy({
    metadata: { name: 'rewrap-api-ingress', labels: { 'app.kubernetes.io/part-of': PART_OF } },
    spec: {
      podSelector: { matchLabels: { 'app.kubernetes.io/name': 'rewrap', 'app.kubernetes.io/component': 'api' } },
      policyTypes: ['Ingress'],
      ingress: [{ from: [fromPrometheus, { podSelector: { matchLabels: { 'rewrap-api-client': 'true' } } }], ports: [{ protocol: 'TCP', port: API_PORT }] }],
    },
  }),
];
