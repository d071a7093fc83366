// Downloads one large file (the model) so that a user on a flaky connection gets it eventually,
// never ends up with a damaged one, and never hands the Hugging Face token to anyone else:
//
//   - every hop is https://: a redirect to http:// (or anything else) is refused before it is
//     followed, so neither the token nor the file ever travels unencrypted;
//   - the token goes only to Hugging Face's own hosts (HUB_HOSTS), over a verified connection: not
//     to a mirror, not to the CDN that /resolve/ redirects to (its URL is signed and needs none, as
//     huggingface_hub does it), not to any other host a redirect names;
//   - bytes go to `<dest>.part`; `<dest>.part.json` remembers the URL and the server's validators
//     (ETag / Last-Modified, Hugging Face's X-Linked-Etag), so an interrupted or cancelled download
//     resumes with a Range request; a server that ignores Range, or a file that changed upstream,
//     restarts it from zero;
//   - redirects are followed by hand (Hugging Face's /resolve/ answers 302 to a CDN) so the
//     X-Linked-Etag / X-Linked-Size of the first hop (the sha256 and size of an LFS file) are seen;
//   - the body is capped at the expected size while it arrives (a server that sends more is cut
//     off and its bytes deleted), and a connection that is silent or trickles below
//     `minBytesPerSecond` for `stallWindowMs` is dropped, keeping the part for a resume;
//   - the size and sha256 are checked before `<dest>` appears (atomic rename); a mismatch deletes
//     the bad bytes and leaves whatever was at `<dest>` before untouched.
//
// Connections go through httpsGet.ts (proxy tunnel, TLS, header deadline). Pure Node: no vscode;
// the token and the proxy settings come from the caller.

import { createHash, Hash } from 'node:crypto';
import { createReadStream, promises as fs } from 'node:fs';
import type { IncomingMessage } from 'node:http';
import * as path from 'node:path';
import { syncDir, writeJsonAtomic } from '../common/atomicWrite';
import { DownloadError } from './downloadError';
import { type ConnectOptions, httpsGet, type HttpsResponse } from './httpsGet';
import { DIRECT, proxyRoute, type ProxySettings } from './proxySettings';

export { DownloadError, type DownloadErrorCode } from './downloadError';

/** The hosts a Hugging Face token may be sent to (over https, with a verified certificate). */
export const HUB_HOSTS: readonly string[] = ['huggingface.co', 'hf.co'];

/** Progress of one download; `total` is undefined when the server does not say. */
export interface DownloadProgress {
  received: number;
  total?: number;
  /** Bytes that were already on disk from an earlier attempt. */
  resumedFrom: number;
}

/** How long the download waits: for response headers, and for a body that stalls or trickles. */
export interface DownloadTimeouts {
  /** From opening the connection to the response headers, per hop. */
  headersMs: number;
  /** The body must bring `minBytesPerSecond` on average over every window of this length. */
  stallWindowMs: number;
  minBytesPerSecond: number;
}

export const DEFAULT_TIMEOUTS: DownloadTimeouts = { headersMs: 30_000, stallWindowMs: 30_000, minBytesPerSecond: 1024 };

/** The cap on a body whose size nothing announces. */
export const DEFAULT_MAX_SIZE = 8 * 1024 ** 3;

export interface DownloadOptions {
  /** An https:// URL. */
  url: string;
  /** Final path; its folder must exist. */
  dest: string;
  /** Known size in bytes (from the manifest); otherwise X-Linked-Size or Content-Length is used. */
  expectedSize?: number;
  /** Known sha256 (hex); otherwise a 64-hex X-Linked-Etag is used; otherwise unchecked. */
  expectedSha256?: string;
  /** Sent as `Authorization: Bearer …` to HUB_HOSTS only, over a verified https connection. */
  token?: string;
  signal?: AbortSignal;
  onProgress?: (p: DownloadProgress) => void;
  /** The proxy (VS Code's http.* settings or the environment); default: direct. */
  proxy?: ProxySettings;
  timeouts?: Partial<DownloadTimeouts>;
  /** Bytes accepted when no size is known from the manifest or the server (default DEFAULT_MAX_SIZE). */
  maxSize?: number;
  maxRedirects?: number;
  /** Trusted CAs and name lookup for the connections (tests: a test CA, names mapped to 127.0.0.1). */
  connect?: ConnectOptions;
}

export interface DownloadResult {
  path: string;
  size: number;
  sha256: string;
  /** Where the sha256 that was checked came from; 'none' when nothing was known to check. */
  verifiedBy: 'manifest' | 'x-linked-etag' | 'none';
  /** Bytes reused from an earlier attempt (0 for a fresh download). */
  resumedFrom: number;
}

/** What `<dest>.part.json` records about the partial file. */
interface PartState {
  url: string;
  etag?: string;
  lastModified?: string;
  linkedEtag?: string;
}

interface Fetched extends HttpsResponse {
  /** X-Linked-Etag / X-Linked-Size seen on any hop (Hugging Face puts them on the redirect). */
  linkedEtag?: string;
  linkedSize?: number;
  finalUrl: URL;
}

const SHA256_HEX = /^[0-9a-f]{64}$/;
const PROGRESS_INTERVAL_MS = 100;

/** The `.part` file that holds an unfinished download of `dest`. */
export function partPath(dest: string): string {
  return `${dest}.part`;
}

/** Whether a request to `url` may carry the Hugging Face token (https, a hub host, certificate verified). */
export function mayCarryToken(url: URL, verifiedTls: boolean): boolean {
  return url.protocol === 'https:' && verifiedTls && HUB_HOSTS.includes(url.hostname.toLowerCase());
}

/** Downloads `url` to `dest` (resuming, verifying, atomic); see the file comment. */
export async function downloadFile(opts: DownloadOptions): Promise<DownloadResult> {
  const part = partPath(opts.dest);
  const stateFile = `${part}.json`;
  const name = path.basename(opts.dest);
  const expectedSha = opts.expectedSha256?.toLowerCase();
  if (expectedSha !== undefined && !SHA256_HEX.test(expectedSha)) {
    throw new Error(`expectedSha256 must be 64 hex digits, got "${opts.expectedSha256}"`);
  }
  const timeouts = { ...DEFAULT_TIMEOUTS, ...opts.timeouts };

  let state = await readPartState(stateFile);
  let have = state?.url === opts.url ? await fileSize(part) : 0;
  if (have === 0) state = undefined;

  // At most two rounds: a resume attempt, then (if the server will not resume) a fresh one.
  for (let round = 0; ; round++) {
    const fetched = await fetchFollowing(opts, timeouts, have > 0 ? state : undefined, have);
    try {
      const { res } = fetched;
      const status = res.statusCode ?? 0;
      const linkedEtag = fetched.linkedEtag;
      let resumeOk = false;
      if (have > 0 && status === 206) {
        const range = parseContentRange(header(res, 'content-range'));
        const changedUpstream = state?.linkedEtag !== undefined && linkedEtag !== undefined && state.linkedEtag !== linkedEtag;
        resumeOk = range?.start === have && !changedUpstream;
      }
      if (have > 0 && !resumeOk) {
        // The server will not continue this file: Range ignored or If-Range failed (200, whose
        // body is the whole file and is used as it is), 416, an unasked range, or a new upstream.
        await discard(part, stateFile);
        have = 0;
        state = undefined;
        if (status !== 200 && round === 0) continue;
      }
      if (status !== 200 && status !== 206) throw httpError(status, res.statusMessage ?? '', opts.url);

      const resumedFrom = have;
      const announced = contentLength(res);
      const total = expectedTotal(opts, fetched, resumedFrom, announced);
      const cap = total ?? opts.maxSize ?? DEFAULT_MAX_SIZE;
      if (announced !== undefined && resumedFrom + announced > cap) {
        await discard(part, stateFile);
        throw new DownloadError('size', `${name}: ${fetched.finalUrl.host} announces ${resumedFrom + announced} bytes, expected ${cap}; nothing was kept`);
      }
      await writeJsonAtomic(stateFile, {
        url: opts.url,
        etag: strongEtag(header(res, 'etag')),
        lastModified: header(res, 'last-modified'),
        linkedEtag,
      } satisfies PartState);

      const hash = createHash('sha256');
      if (resumedFrom > 0) await hashFile(part, hash);
      let received: number;
      try {
        received = await receiveBody(res, { part, name, host: fetched.finalUrl.host, resumedFrom, hash, total, cap, timeouts, opts });
      } catch (e) {
        if (e instanceof DownloadError && e.code === 'size') await discard(part, stateFile);
        throw e;
      }
      const sha256 = hash.digest('hex');

      const wantSize = opts.expectedSize ?? fetched.linkedSize ?? total;
      if (wantSize !== undefined && received !== wantSize) {
        await discard(part, stateFile);
        throw new DownloadError('size', `${name}: got ${received} bytes, expected ${wantSize}; the partial file was deleted`);
      }
      const linkedSha = linkedEtag !== undefined && SHA256_HEX.test(linkedEtag) ? linkedEtag : undefined;
      const wantSha = expectedSha ?? linkedSha;
      if (wantSha !== undefined && sha256 !== wantSha) {
        await discard(part, stateFile);
        throw new DownloadError('checksum', `${name}: sha256 ${sha256} does not match the expected ${wantSha}; the downloaded file was deleted`);
      }
      await fs.rename(part, opts.dest);
      await fs.rm(stateFile, { force: true });
      await syncDir(path.dirname(opts.dest));
      return {
        path: opts.dest,
        size: received,
        sha256,
        verifiedBy: expectedSha !== undefined ? 'manifest' : linkedSha !== undefined ? 'x-linked-etag' : 'none',
        resumedFrom,
      };
    } finally {
      fetched.dispose();
    }
  }
}

/** Follows redirects by hand: https only, the token only where mayCarryToken allows. */
async function fetchFollowing(opts: DownloadOptions, timeouts: DownloadTimeouts, state: PartState | undefined, have: number): Promise<Fetched> {
  let url = parseUrl(opts.url);
  let from: URL | undefined;
  let linkedEtag: string | undefined;
  let linkedSize: number | undefined;
  const maxRedirects = opts.maxRedirects ?? 10;
  for (let hop = 0; ; hop++) {
    if (url.protocol !== 'https:') {
      const where = from ? `${from.origin} redirected to ${url.protocol}//${url.host}` : `the download URL is ${url.protocol}//${url.host}`;
      throw new DownloadError('redirect', `${where}: refused, only https:// is used (the file and any token must not travel unencrypted)`);
    }
    const route = proxyRoute(url, opts.proxy ?? DIRECT);
    const headers: Record<string, string> = { 'accept-encoding': 'identity', 'user-agent': 'gemma-tune' };
    // The certificate is known to be checked unless a proxy route turned checking off.
    if (opts.token && mayCarryToken(url, route?.strictSSL ?? true)) headers.authorization = `Bearer ${opts.token}`;
    if (have > 0) {
      headers.range = `bytes=${have}-`;
      const validator = state?.etag ?? state?.lastModified;
      if (validator) headers['if-range'] = validator;
    }
    const got = await httpsGet(url, { headers, route, signal: opts.signal, headersTimeoutMs: timeouts.headersMs, ...opts.connect });
    const { res } = got;
    linkedEtag = unquote(header(res, 'x-linked-etag')) ?? linkedEtag;
    const size = Number(header(res, 'x-linked-size') ?? NaN);
    if (Number.isSafeInteger(size) && size >= 0) linkedSize = size;
    const status = res.statusCode ?? 0;
    if (status >= 300 && status < 400 && status !== 304) {
      got.dispose();
      const location = header(res, 'location');
      if (!location) throw new DownloadError('redirect', `HTTP ${status} from ${url.origin} without a Location header`);
      if (hop >= maxRedirects) throw new DownloadError('redirect', `more than ${maxRedirects} redirects starting at ${opts.url}`);
      from = url;
      url = parseUrl(location, url);
      continue;
    }
    return { ...got, linkedEtag, linkedSize, finalUrl: url };
  }
}

interface Receiving {
  part: string;
  name: string;
  host: string;
  resumedFrom: number;
  hash: Hash;
  total: number | undefined;
  /** Bytes the part may hold at most; one more is a size error. */
  cap: number;
  timeouts: DownloadTimeouts;
  opts: DownloadOptions;
}

/** Streams the body into the part file, hashing and reporting as it goes; returns the file size. */
async function receiveBody(res: IncomingMessage, r: Receiving): Promise<number> {
  const { opts, timeouts } = r;
  const handle = await fs.open(r.part, r.resumedFrom > 0 ? 'a' : 'w');
  let received = r.resumedFrom;
  let lastReport = 0;
  const report = (force: boolean) => {
    const now = Date.now();
    if (!force && now - lastReport < PROGRESS_INTERVAL_MS) return;
    lastReport = now;
    opts.onProgress?.({ received, total: r.total, resumedFrom: r.resumedFrom });
  };
  report(true);
  // A stalled connection never errors by itself, and one that trickles would hold the download for
  // days: every window must bring its share of bytes.
  const perWindow = Math.ceil((timeouts.minBytesPerSecond * timeouts.stallWindowMs) / 1000);
  const windowS = timeouts.stallWindowMs / 1000;
  let windowStart = received;
  const watchdog = setInterval(() => {
    const got = received - windowStart;
    windowStart = received;
    if (got >= perWindow) return;
    const what = got === 0 ? `no data for ${windowS} s` : `only ${got} bytes in ${windowS} s (under ${timeouts.minBytesPerSecond} bytes/s)`;
    res.destroy(new DownloadError('timeout', `${what} from ${r.host} after ${received} bytes; run the download again to resume`));
  }, timeouts.stallWindowMs);
  const onAbort = () => res.destroy(new DownloadError('aborted', `download cancelled after ${received} bytes; it resumes from there next time`));
  opts.signal?.addEventListener('abort', onAbort, { once: true });
  if (opts.signal?.aborted) onAbort();
  try {
    for await (const chunk of res as AsyncIterable<Buffer>) {
      if (received + chunk.byteLength > r.cap) {
        throw new DownloadError('size', `${r.name}: ${r.host} sent more than the expected ${r.cap} bytes; the partial file was deleted`);
      }
      await handle.write(chunk);
      r.hash.update(chunk);
      received += chunk.byteLength;
      report(false);
    }
    await handle.sync();
  } catch (err) {
    res.destroy();
    if (err instanceof DownloadError) throw err;
    if (opts.signal?.aborted) throw new DownloadError('aborted', `download cancelled after ${received} bytes; it resumes from there next time`);
    const code = (err as { code?: unknown }).code;
    throw new DownloadError('network', `the connection to ${r.host} broke after ${received} bytes (${typeof code === 'string' ? code : (err as Error).message}); run the download again to resume`);
  } finally {
    clearInterval(watchdog);
    opts.signal?.removeEventListener('abort', onAbort);
    await handle.close();
  }
  report(true);
  return received;
}

function expectedTotal(opts: DownloadOptions, fetched: Fetched, resumedFrom: number, announced: number | undefined): number | undefined {
  if (opts.expectedSize !== undefined) return opts.expectedSize;
  if (fetched.linkedSize !== undefined) return fetched.linkedSize;
  const range = parseContentRange(header(fetched.res, 'content-range'));
  if (range?.total !== undefined) return range.total;
  return announced !== undefined ? resumedFrom + announced : undefined;
}

/** Parses `bytes start-end/total` (total may be `*`). */
export function parseContentRange(value: string | null | undefined): { start: number; end: number; total?: number } | undefined {
  const m = value?.match(/^bytes (\d+)-(\d+)\/(\d+|\*)$/);
  if (!m) return undefined;
  return { start: Number(m[1]), end: Number(m[2]), total: m[3] === '*' ? undefined : Number(m[3]) };
}

function httpError(status: number, statusText: string, url: string): DownloadError {
  const hint =
    status === 401 || status === 403
      ? ' — the repository may need a Hugging Face token (or a token with access to this gated model)'
      : status === 404
        ? ' — check the model repository and file name'
        : '';
  return new DownloadError('http', `HTTP ${status}${statusText ? ` ${statusText}` : ''} for ${url}${hint}`, status);
}

/** A URL from the caller or a Location header; a malformed one is a redirect error, not a crash. */
function parseUrl(raw: string, base?: URL): URL {
  try {
    return new URL(raw, base);
  } catch {
    throw new DownloadError('redirect', base ? `${base.origin} redirected to an invalid URL` : `not a URL: ${raw}`);
  }
}

function header(res: IncomingMessage, name: string): string | undefined {
  const v = res.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

function contentLength(res: IncomingMessage): number | undefined {
  const n = Number(header(res, 'content-length') ?? NaN);
  return Number.isSafeInteger(n) && n >= 0 ? n : undefined;
}

/** If-Range accepts only strong validators. */
function strongEtag(etag: string | undefined): string | undefined {
  return etag && !etag.startsWith('W/') ? etag : undefined;
}

function unquote(v: string | undefined): string | undefined {
  if (v === undefined) return undefined;
  return v.replace(/^W\//, '').replace(/^"|"$/g, '').toLowerCase();
}

async function readPartState(file: string): Promise<PartState | undefined> {
  try {
    const json = JSON.parse(await fs.readFile(file, 'utf8')) as Partial<PartState>;
    return typeof json.url === 'string' ? (json as PartState) : undefined;
  } catch {
    return undefined; // missing or damaged: start over
  }
}

async function fileSize(file: string): Promise<number> {
  try {
    return (await fs.stat(file)).size;
  } catch {
    return 0;
  }
}

async function hashFile(file: string, hash: Hash): Promise<void> {
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
}

async function discard(part: string, stateFile: string): Promise<void> {
  await fs.rm(part, { force: true });
  await fs.rm(stateFile, { force: true });
}
