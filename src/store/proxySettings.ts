// Which HTTP proxy the model download goes through, from VS Code's settings (`http.proxy`,
// `http.noProxy`, `http.proxyStrictSSL`, `http.proxyAuthorization`) or, where `http.proxy` is empty
// and in the CLI, from the environment (`https_proxy`, `HTTPS_PROXY`, `http_proxy`, `HTTP_PROXY`,
// `no_proxy`, `NO_PROXY`: the order VS Code reads them in). Only `http://` proxies are spoken to
// (HTTPS runs through them in a CONNECT tunnel); anything else is refused by name. Pure: no vscode.

import { BlockList, isIP } from 'node:net';
import { DownloadError } from './downloadError';

/** The proxy configuration, checked. */
export interface ProxySettings {
  /** `http://[user:pass@]host[:port]`; undefined: connect directly. */
  proxy?: string;
  /** Hosts that bypass the proxy: `host`, `.domain` / `*.domain` (and its subdomains), `host:port`, an IP or CIDR, `*`. */
  noProxy: string[];
  /** Whether certificates of servers reached through the proxy are verified (VS Code's http.proxyStrictSSL). */
  strictSSL: boolean;
  /** Sent as Proxy-Authorization (VS Code's http.proxyAuthorization); overrides credentials in the URL. */
  authorization?: string;
}

/** No proxy: every connection is direct and verified. */
export const DIRECT: ProxySettings = { noProxy: [], strictSSL: true };

/** How to reach one target: through this proxy, or directly when undefined. */
export interface ProxyRoute {
  host: string;
  port: number;
  /** Proxy-Authorization for the CONNECT request. */
  authorization?: string;
  strictSSL: boolean;
  /** The proxy as a user may see it in a message (no credentials). */
  display: string;
}

/** The environment's proxy (curl's and VS Code's variables); what the CLI uses. */
export function proxySettingsFromEnv(env: NodeJS.ProcessEnv): ProxySettings {
  const proxy = env.https_proxy || env.HTTPS_PROXY || env.http_proxy || env.HTTP_PROXY || undefined;
  return { proxy: proxy?.trim() || undefined, noProxy: splitList(env.no_proxy || env.NO_PROXY), strictSSL: true };
}

/** The values of VS Code's `http.*` settings as read from a WorkspaceConfiguration (unchecked). */
export interface HttpSettingValues {
  proxy?: unknown;
  noProxy?: unknown;
  proxyStrictSSL?: unknown;
  proxyAuthorization?: unknown;
}

/**
 * VS Code's proxy settings, checked, with the environment as the fallback VS Code itself uses:
 * `http.proxy` when set, else the environment's proxy; `http.noProxy` and NO_PROXY both apply.
 * `problems` names each value that was ignored.
 */
export function proxySettingsFromVscode(v: HttpSettingValues, env: NodeJS.ProcessEnv): { settings: ProxySettings; problems: string[] } {
  const problems: string[] = [];
  const fromEnv = proxySettingsFromEnv(env);
  let proxy = fromEnv.proxy;
  if (typeof v.proxy === 'string' && v.proxy.trim() !== '') proxy = v.proxy.trim();
  else if (v.proxy !== undefined && v.proxy !== null && v.proxy !== '') problems.push('http.proxy must be a string; ignored');
  const noProxy = [...fromEnv.noProxy];
  if (Array.isArray(v.noProxy)) noProxy.push(...v.noProxy.filter((x): x is string => typeof x === 'string').flatMap(splitList));
  else if (v.noProxy !== undefined && v.noProxy !== null) problems.push('http.noProxy must be a list of host names; ignored');
  let strictSSL = true;
  if (typeof v.proxyStrictSSL === 'boolean') strictSSL = v.proxyStrictSSL;
  else if (v.proxyStrictSSL !== undefined && v.proxyStrictSSL !== null) problems.push('http.proxyStrictSSL must be true or false; using true');
  let authorization: string | undefined;
  if (typeof v.proxyAuthorization === 'string' && v.proxyAuthorization !== '') authorization = v.proxyAuthorization;
  else if (v.proxyAuthorization !== undefined && v.proxyAuthorization !== null && v.proxyAuthorization !== '') problems.push('http.proxyAuthorization must be a string; ignored');
  return { settings: { proxy, noProxy, strictSSL, authorization }, problems };
}

/**
 * The proxy to reach `target` through, or undefined for a direct connection (no proxy, the target
 * is this machine, or it is in noProxy). Throws a `proxy` DownloadError for a proxy URL it cannot use.
 */
export function proxyRoute(target: URL, s: ProxySettings): ProxyRoute | undefined {
  if (!s.proxy) return undefined;
  const host = bareHost(target.hostname);
  const port = Number(target.port || (target.protocol === 'https:' ? 443 : 80));
  // As VS Code does: this machine is never reached through a proxy.
  if (host === 'localhost' || host === '::1' || host.startsWith('127.')) return undefined;
  if (bypasses(host, port, s.noProxy)) return undefined;
  return parseProxy(s);
}

function parseProxy(s: ProxySettings): ProxyRoute {
  const raw = s.proxy!;
  let url: URL;
  try {
    url = new URL(/^[a-z][a-z0-9+.-]*:\/\//i.test(raw) ? raw : `http://${raw}`);
  } catch {
    throw new DownloadError('proxy', `the proxy "${redact(raw)}" is not a URL; write it as http://host:port`);
  }
  if (url.protocol !== 'http:') {
    throw new DownloadError('proxy', `the proxy ${url.protocol}//${url.host} is not supported: only http:// proxies (HTTPS goes through them in a CONNECT tunnel)`);
  }
  const port = Number(url.port || 80);
  const display = `http://${url.host}`;
  let authorization = s.authorization;
  if (authorization === undefined && (url.username || url.password)) {
    const user = decodeURIComponent(url.username);
    const pass = decodeURIComponent(url.password);
    authorization = `Basic ${Buffer.from(`${user}:${pass}`).toString('base64')}`;
  }
  return { host: bareHost(url.hostname), port, authorization, strictSSL: s.strictSSL, display };
}

/** Whether a noProxy list sends `host:port` direct. */
export function bypasses(host: string, port: number, noProxy: readonly string[]): boolean {
  const h = bareHost(host).toLowerCase();
  for (const raw of noProxy) {
    const entry = raw.trim().toLowerCase();
    if (entry === '') continue;
    if (entry === '*') return true;
    const { name, port: entryPort } = splitHostPort(entry);
    if (entryPort !== undefined && entryPort !== port) continue;
    if (isIP(h) && (name.includes('/') || isIP(name))) {
      if (inCidr(h, name)) return true;
      continue;
    }
    const domain = name.replace(/^\*?\./, '');
    if (domain !== '' && (h === domain || h.endsWith(`.${domain}`))) return true;
  }
  return false;
}

function inCidr(ip: string, entry: string): boolean {
  const [base, bits] = entry.split('/');
  const family = isIP(base);
  if (family === 0 || isIP(ip) !== family) return false;
  const type = family === 4 ? 'ipv4' : 'ipv6';
  if (bits === undefined) return base === ip;
  const prefix = Number(bits);
  if (!Number.isInteger(prefix) || prefix < 0 || prefix > (family === 4 ? 32 : 128)) return false;
  const list = new BlockList();
  list.addSubnet(base, prefix, type);
  return list.check(ip, type);
}

/** `host:port`, `[v6]:port`, `v6` or `host` → name and optional port. */
function splitHostPort(entry: string): { name: string; port?: number } {
  const v6 = entry.match(/^\[([^\]]+)\](?::(\d+))?$/);
  if (v6) return { name: v6[1], port: v6[2] === undefined ? undefined : Number(v6[2]) };
  if (isIP(entry.split('/')[0]) === 6) return { name: entry };
  const m = entry.match(/^(.*):(\d+)$/);
  return m ? { name: m[1], port: Number(m[2]) } : { name: entry };
}

function bareHost(h: string): string {
  return h.replace(/^\[|\]$/g, '');
}

function splitList(v: string | undefined): string[] {
  return (v ?? '').split(/[,\s]+/).filter(Boolean);
}

/** A proxy URL without its credentials, for messages and logs. */
export function redact(raw: string): string {
  return raw.replace(/\/\/[^@/]*@/, '//…@');
}
