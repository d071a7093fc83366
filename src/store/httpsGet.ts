// One HTTPS GET over a connection opened here: TLS straight to the host, or through an http:// proxy
// in a CONNECT tunnel with TLS to the host inside it, so the proxy sees the host name and encrypted
// bytes, never the path or the Authorization header. One deadline covers everything up to the
// response headers (name lookup, proxy, TLS handshake, the server's answer), so a server that
// accepts and then says nothing, or says it a byte at a time, cannot hold the download for minutes.
//
// Why not fetch or https.request: VS Code's extension host patches both so that its own proxy agent
// replaces the caller's (`http.proxySupport: override`, the default), and then neither the tunnel nor
// the certificate check nor the deadline would be ours. http.ClientRequest with `createConnection` is
// the HTTP/1.1 client that https.request builds on, minus the agent.
//
// Which certificates are trusted: Node's bundled ones and NODE_EXTRA_CA_CERTS, plus the operating
// system's, so that a company certificate authority installed on the machine works: read by Node
// where it can (tls.getCACertificates, Node 22.15+), else added by VS Code's patch of the `tls`
// module (`http.systemCertificates`), which is why `tls` is imported without the `node:` prefix:
// VS Code patches the module under that name only.

import * as http from 'node:http';
import { isIP, type LookupFunction, connect as netConnect, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import * as tls from 'tls';
import { DownloadError } from './downloadError';
import type { ProxyRoute } from './proxySettings';

/** How connections are opened: trusted CAs instead of the system's, a name lookup instead of DNS (tests use both). */
export interface ConnectOptions {
  ca?: string | Buffer | (string | Buffer)[];
  lookup?: LookupFunction;
}

export interface HttpsGetOptions extends ConnectOptions {
  headers: Record<string, string>;
  /** The proxy for this URL (see proxyRoute); undefined: direct. */
  route?: ProxyRoute;
  signal?: AbortSignal;
  /** Until the response headers are in: connect, proxy, TLS handshake and the server's answer. */
  headersTimeoutMs: number;
}

/** A response whose body has not been read yet. */
export interface HttpsResponse {
  res: http.IncomingMessage;
  /** Whether the server's certificate was verified (always, except through a proxy with strictSSL off). */
  verified: boolean;
  /** Closes the connection (the body is not reused: every request has its own connection). */
  dispose(): void;
}

/** Sends one GET to an https:// URL; resolves when the response headers are in. */
export function httpsGet(url: URL, opts: HttpsGetOptions): Promise<HttpsResponse> {
  if (url.protocol !== 'https:') return Promise.reject(new DownloadError('redirect', `refusing ${url.protocol}// URL ${url.origin}: only https:// is used`));
  return new Promise((resolve, reject) => {
    const opened: Duplex[] = [];
    let settled = false;
    const finish = () => {
      settled = true;
      clearTimeout(timer);
      opts.signal?.removeEventListener('abort', onAbort);
    };
    const fail = (err: DownloadError) => {
      if (settled) return;
      finish();
      for (const s of opened) s.destroy();
      reject(err);
    };
    const via = opts.route ? ` through the proxy ${opts.route.display}` : '';
    const timer = setTimeout(
      () => fail(new DownloadError('timeout', `no answer from ${url.host}${via} within ${seconds(opts.headersTimeoutMs)} s${hint(opts.route)}`)),
      opts.headersTimeoutMs,
    );
    const onAbort = () => fail(new DownloadError('aborted', 'download cancelled'));
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    if (opts.signal?.aborted) return onAbort();

    openTls(url, opts, (s) => opened.push(s)).then(
      (socket) => {
        if (settled) return void socket.destroy();
        const req = new http.ClientRequest({
          method: 'GET',
          path: `${url.pathname}${url.search}`,
          headers: { host: url.host, ...opts.headers },
          createConnection: () => socket,
        });
        req.once('response', (res) => {
          if (settled) return void socket.destroy();
          finish();
          resolve({ res, verified: socket.authorized, dispose: () => socket.destroy() });
        });
        // `on`, not `once`: Node may report a broken socket to the request again while the body is read.
        req.on('error', (e) => fail(connectionError(e, url, opts.route)));
        req.end();
      },
      (e: unknown) => fail(e instanceof DownloadError ? e : connectionError(e, url, opts.route)),
    );
  });
}

/** A TLS connection to the URL's host, directly or inside a proxy tunnel; resolves once verified. */
async function openTls(url: URL, opts: HttpsGetOptions, track: (s: Duplex) => void): Promise<tls.TLSSocket> {
  const host = url.hostname.replace(/^\[|\]$/g, '');
  const port = Number(url.port || 443);
  const tunnel = opts.route ? await connectTunnel(opts.route, host, port, opts.lookup, track) : undefined;
  const socket = tls.connect({
    socket: tunnel,
    host,
    port: tunnel ? undefined : port,
    servername: isIP(host) ? undefined : host,
    ca: opts.ca ?? systemTrust(),
    lookup: tunnel ? undefined : opts.lookup,
    // Only through a proxy may the user turn verification off (http.proxyStrictSSL); then no token is sent.
    rejectUnauthorized: opts.route ? opts.route.strictSSL : true,
    ALPNProtocols: ['http/1.1'],
  });
  track(socket);
  await new Promise<void>((resolve, reject) => {
    socket.once('secureConnect', resolve);
    socket.on('error', reject);
  });
  return socket;
}

let trusted: string[] | null | undefined;

/** Node's default CAs plus the operating system's, where the runtime can list them; else undefined (tls decides). */
function systemTrust(): string[] | undefined {
  if (trusted === undefined) {
    const list = (tls as { getCACertificates?: (type: 'default' | 'system') => string[] }).getCACertificates;
    try {
      trusted = typeof list === 'function' ? [...new Set([...list('default'), ...list('system')])] : null;
    } catch {
      trusted = null; // no readable system store: Node's defaults
    }
  }
  return trusted ?? undefined;
}

/** Asks the proxy for a tunnel to host:port (HTTP CONNECT); resolves with the raw tunnel. */
function connectTunnel(route: ProxyRoute, host: string, port: number, lookup: LookupFunction | undefined, track: (s: Duplex) => void): Promise<Duplex> {
  const target = `${isIP(host) === 6 ? `[${host}]` : host}:${port}`;
  const headers: Record<string, string> = { host: target };
  if (route.authorization) headers['proxy-authorization'] = route.authorization;
  return new Promise((resolve, reject) => {
    const req = new http.ClientRequest({
      method: 'CONNECT',
      path: target,
      headers,
      createConnection: (): Socket => {
        const s = netConnect({ host: route.host, port: route.port, lookup });
        track(s);
        return s;
      },
    });
    req.once('connect', (res: http.IncomingMessage, socket: Duplex, head: Buffer) => {
      if (res.statusCode !== 200) {
        socket.destroy();
        const creds = res.statusCode === 407 ? ' (it asks for credentials: write them into the proxy URL as http://user:password@host:port, or set http.proxyAuthorization)' : '';
        return reject(new DownloadError('proxy', `the proxy ${route.display} refused a tunnel to ${target}: HTTP ${res.statusCode} ${res.statusMessage ?? ''}`.trimEnd() + creds));
      }
      if (head.length > 0) socket.unshift(head);
      resolve(socket);
    });
    req.on('error', (e) => reject(new DownloadError('proxy', `cannot reach the proxy ${route.display} (${errorCode(e)})`)));
    req.end();
  });
}

const CERT_ERRORS = /CERT|SELF_SIGNED|UNABLE_TO_(GET|VERIFY)|ERR_TLS_CERT_ALTNAME_INVALID|HOSTNAME_MISMATCH/;

/** A connection failure as the user should read it: which host, why, and what may help. */
function connectionError(e: unknown, url: URL, route: ProxyRoute | undefined): DownloadError {
  const code = errorCode(e);
  if (CERT_ERRORS.test(code)) {
    const advice = route
      ? '; a proxy that re-signs HTTPS needs its certificate among the system\'s trusted ones (or http.proxyStrictSSL off, and then no token is sent)'
      : '';
    return new DownloadError('tls', `the certificate of ${url.host} is not trusted (${code})${advice}`);
  }
  return new DownloadError('network', `cannot connect to ${url.host}${route ? ` through the proxy ${route.display}` : ''} (${code})${hint(route)}`);
}

/** A direct connection that fails may need a proxy the user has not told us about. */
function hint(route: ProxyRoute | undefined): string {
  return route ? '' : '; behind a proxy, set http.proxy (VS Code) or HTTPS_PROXY (command line)';
}

function errorCode(e: unknown): string {
  const err = e as { code?: unknown; message?: unknown };
  return typeof err?.code === 'string' ? err.code : String(err?.message ?? e);
}

function seconds(ms: number): string {
  return String(Math.round(ms / 100) / 10);
}
