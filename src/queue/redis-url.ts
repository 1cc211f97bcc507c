/**
 * Redis URLs: `redis://` / `rediss://` name one server; `redis+cluster://` /
 * `rediss+cluster://[user:password@]host:port,host:port,...` name a Redis Cluster by seed nodes.
 * Parsing only (config.ts checks URLs at start without opening a connection).
 */
import { ConfigError } from '../core/errors.ts';

export interface ClusterTarget {
  nodes: { host: string; port: number }[];
  username?: string;
  password?: string;
  tls: boolean;
}

const CLUSTER_SCHEME = /^(rediss?)\+cluster:\/\//i;

export function isClusterUrl(url: string): boolean {
  return CLUSTER_SCHEME.test(url);
}

/** Parses `redis+cluster://[user:pass@]h1:p1,h2:p2`; the message never repeats the password. */
export function parseClusterUrl(url: string): ClusterTarget {
  const m = CLUSTER_SCHEME.exec(url);
  if (!m) throw new ConfigError('expected a redis+cluster:// or rediss+cluster:// URL');
  let rest = url.slice(m[0].length).replace(/\/\d*$/, '');
  let username: string | undefined;
  let password: string | undefined;
  const at = rest.lastIndexOf('@');
  if (at >= 0) {
    const userinfo = rest.slice(0, at);
    rest = rest.slice(at + 1);
    const colon = userinfo.indexOf(':');
    username = decodeURIComponent(colon >= 0 ? userinfo.slice(0, colon) : userinfo) || undefined;
    password = colon >= 0 ? decodeURIComponent(userinfo.slice(colon + 1)) || undefined : undefined;
  }
  const nodes = rest.split(',').map((s) => s.trim()).filter(Boolean).map(parseNode);
  if (nodes.length === 0) throw new ConfigError('Redis Cluster URL names no node: expected redis+cluster://host:port[,host:port...]');
  return { nodes, username, password, tls: m[1]!.toLowerCase() === 'rediss' };
}

function parseNode(s: string): { host: string; port: number } {
  const m = /^(\[[^\]]+\]|[^:]+)(?::(\d+))?$/.exec(s);
  const port = m?.[2] === undefined ? 6379 : Number(m[2]);
  if (!m || !Number.isInteger(port) || port < 1 || port > 65535) {
    throw new ConfigError(`Redis Cluster node ${JSON.stringify(s)}: expected host:port (e.g. 10.0.0.5:6379)`);
  }
  return { host: m[1]!.replace(/^\[|\]$/g, ''), port };
}

/** The canonical cluster URL for a node list (what config passes to every process). */
export function clusterUrl(t: ClusterTarget): string {
  const auth = t.username || t.password ? `${encodeURIComponent(t.username ?? '')}${t.password ? `:${encodeURIComponent(t.password)}` : ''}@` : '';
  return `${t.tls ? 'rediss' : 'redis'}+cluster://${auth}${t.nodes.map((n) => `${n.host.includes(':') ? `[${n.host}]` : n.host}:${n.port}`).join(',')}`;
}

