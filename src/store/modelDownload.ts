// Downloads one large file (the model) so that a user on a flaky connection gets it eventually
// and never ends up with a damaged one:
//
//   - bytes go to `<dest>.part`; `<dest>.part.json` remembers the URL and the server's
//     validators (ETag / Last-Modified, Hugging Face's X-Linked-Etag), so an interrupted or
//     cancelled download resumes with a Range request; a server that ignores Range, or a file
//     that changed upstream, restarts it from zero;
//   - redirects are followed by hand (Hugging Face's /resolve/ answers 302 to a CDN) so the
//     X-Linked-Etag / X-Linked-Size of the first hop (the sha256 and size of an LFS file) are
//     seen, and a bearer token is sent only to the host it was given for;
//   - the size and sha256 are checked before `<dest>` appears (atomic rename); a mismatch deletes
//     the bad bytes and leaves whatever was at `<dest>` before untouched.
//
// Pure Node (global fetch): no vscode. The token comes from the caller (SecretStorage there).

import { createHash, Hash } from 'node:crypto';
import { createReadStream, promises as fs } from 'node:fs';
import * as path from 'node:path';
import { syncDir, writeJsonAtomic } from '../engine/atomicWrite';

/** What went wrong; `aborted` and `network` keep the partial file for a later resume. */
export type DownloadErrorCode = 'http' | 'size' | 'checksum' | 'redirect' | 'network' | 'aborted';

/** A failed download, with a message a user can act on. */
export class DownloadError extends Error {
  constructor(
    readonly code: DownloadErrorCode,
    message: string,
    /** The HTTP status for `http` errors. */
    readonly status?: number,
  ) {
    super(message);
    this.name = 'DownloadError';
  }
}

/** Progress of one download; `total` is undefined when the server does not say. */
export interface DownloadProgress {
  received: number;
  total?: number;
  /** Bytes that were already on disk from an earlier attempt. */
  resumedFrom: number;
}

export interface DownloadOptions {
  url: string;
  /** Final path; its folder must exist. */
  dest: string;
  /** Known size in bytes (from the manifest); otherwise X-Linked-Size or Content-Length is used. */
  expectedSize?: number;
  /** Known sha256 (hex); otherwise a 64-hex X-Linked-Etag is used; otherwise unchecked. */
  expectedSha256?: string;
  /** Sent as `Authorization: Bearer …` to the URL's own host only. */
  token?: string;
  signal?: AbortSignal;
  onProgress?: (p: DownloadProgress) => void;
  /** A connection that delivers nothing for this long is dropped (the part is kept). */
  idleTimeoutMs?: number;
  maxRedirects?: number;
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

interface Fetched {
  response: Response;
  /** X-Linked-Etag / X-Linked-Size seen on any hop (Hugging Face puts them on the redirect). */
  linkedEtag?: string;
  linkedSize?: number;
  finalUrl: string;
}

const SHA256_HEX = /^[0-9a-f]{64}$/;
const PROGRESS_INTERVAL_MS = 100;

/** The `.part` file that holds an unfinished download of `dest`. */
export function partPath(dest: string): string {
  return `${dest}.part`;
}

/** Downloads `url` to `dest` (resuming, verifying, atomic); see the file comment. */
export async function downloadFile(opts: DownloadOptions): Promise<DownloadResult> {
  const part = partPath(opts.dest);
  const stateFile = `${part}.json`;
  const expectedSha = opts.expectedSha256?.toLowerCase();
  if (expectedSha !== undefined && !SHA256_HEX.test(expectedSha)) {
    throw new Error(`expectedSha256 must be 64 hex digits, got "${opts.expectedSha256}"`);
  }

  let state = await readPartState(stateFile);
  let have = state?.url === opts.url ? await fileSize(part) : 0;
  if (have === 0) state = undefined;

  // At most two rounds: a resume attempt, then (if the server will not resume) a fresh one.
  for (let round = 0; ; round++) {
    const fetched = await fetchFollowing(opts, have > 0 ? state : undefined, have);
    const { response } = fetched;
    const linkedEtag = fetched.linkedEtag;
    let resumeOk = false;
    if (have > 0 && response.status === 206) {
      const range = parseContentRange(response.headers.get('content-range'));
      const changedUpstream = state?.linkedEtag !== undefined && linkedEtag !== undefined && state.linkedEtag !== linkedEtag;
      resumeOk = range?.start === have && !changedUpstream;
    }
    if (have > 0 && !resumeOk) {
      // The server will not continue this file: Range ignored or If-Range failed (200, whose
      // body is the whole file and is used as it is), 416, an unasked range, or a new upstream.
      await discard(part, stateFile);
      have = 0;
      state = undefined;
      if (response.status !== 200) {
        await response.body?.cancel().catch(() => undefined);
        if (round === 0) continue;
      }
    }
    if (response.status !== 200 && response.status !== 206) {
      await response.body?.cancel().catch(() => undefined);
      throw httpError(response.status, response.statusText, opts.url);
    }
    const resumedFrom = have;
    const total = expectedTotal(opts, fetched, resumedFrom);
    await writeJsonAtomic(stateFile, {
      url: opts.url,
      etag: strongEtag(response.headers.get('etag')),
      lastModified: response.headers.get('last-modified') ?? undefined,
      linkedEtag,
    } satisfies PartState);

    const hash = createHash('sha256');
    if (resumedFrom > 0) await hashFile(part, hash);
    const received = await receiveBody(response, part, resumedFrom, hash, total, opts);
    const sha256 = hash.digest('hex');

    const wantSize = opts.expectedSize ?? fetched.linkedSize ?? total;
    if (wantSize !== undefined && received !== wantSize) {
      await discard(part, stateFile);
      throw new DownloadError('size', `${path.basename(opts.dest)}: got ${received} bytes, expected ${wantSize}; the partial file was deleted`);
    }
    const linkedSha = linkedEtag !== undefined && SHA256_HEX.test(linkedEtag) ? linkedEtag : undefined;
    const wantSha = expectedSha ?? linkedSha;
    if (wantSha !== undefined && sha256 !== wantSha) {
      await discard(part, stateFile);
      throw new DownloadError('checksum', `${path.basename(opts.dest)}: sha256 ${sha256} does not match the expected ${wantSha}; the downloaded file was deleted`);
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
  }
}

/** Follows redirects by hand, carrying the token only to the original host. */
async function fetchFollowing(opts: DownloadOptions, state: PartState | undefined, have: number): Promise<Fetched> {
  const origin = new URL(opts.url);
  let url = origin;
  let linkedEtag: string | undefined;
  let linkedSize: number | undefined;
  const maxRedirects = opts.maxRedirects ?? 10;
  for (let hop = 0; ; hop++) {
    if (url.protocol !== 'https:' && url.protocol !== 'http:') {
      throw new DownloadError('redirect', `refusing to download from ${url.protocol} URL ${url.href}`);
    }
    const headers: Record<string, string> = { 'accept-encoding': 'identity' };
    if (opts.token && url.host === origin.host) headers.authorization = `Bearer ${opts.token}`;
    if (have > 0) {
      headers.range = `bytes=${have}-`;
      const validator = state?.etag ?? state?.lastModified;
      if (validator) headers['if-range'] = validator;
    }
    let response: Response;
    try {
      response = await fetch(url, { headers, redirect: 'manual', signal: opts.signal });
    } catch (err) {
      throw networkError(err, opts, url.href);
    }
    linkedEtag = unquote(response.headers.get('x-linked-etag')) ?? linkedEtag;
    const size = Number(response.headers.get('x-linked-size') ?? NaN);
    if (Number.isSafeInteger(size) && size >= 0) linkedSize = size;
    if (response.status >= 300 && response.status < 400 && response.status !== 304) {
      await response.body?.cancel().catch(() => undefined);
      const location = response.headers.get('location');
      if (!location) throw new DownloadError('redirect', `HTTP ${response.status} from ${url.href} without a Location header`);
      if (hop >= maxRedirects) throw new DownloadError('redirect', `more than ${maxRedirects} redirects starting at ${opts.url}`);
      url = new URL(location, url);
      continue;
    }
    return { response, linkedEtag, linkedSize, finalUrl: url.href };
  }
}

/** Streams the body into the part file, hashing and reporting as it goes; returns the file size. */
async function receiveBody(response: Response, part: string, resumedFrom: number, hash: Hash, total: number | undefined, opts: DownloadOptions): Promise<number> {
  const handle = await fs.open(part, resumedFrom > 0 ? 'a' : 'w');
  let received = resumedFrom;
  let lastReport = 0;
  const report = (force: boolean) => {
    const now = Date.now();
    if (!force && now - lastReport < PROGRESS_INTERVAL_MS) return;
    lastReport = now;
    opts.onProgress?.({ received, total, resumedFrom });
  };
  report(true);
  const body = response.body;
  if (!body) throw new DownloadError('network', `no response body from ${opts.url}`);
  const reader = body.getReader();
  const idleMs = opts.idleTimeoutMs ?? 30_000;
  // A stalled connection never errors by itself: each read races a timer.
  const read = () =>
    new Promise<ReadableStreamReadResult<Uint8Array>>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new DownloadError('network', `no data for ${idleMs / 1000} s from ${opts.url} after ${received} bytes; run the download again to resume`)),
        idleMs,
      );
      reader.read().then(
        (r) => (clearTimeout(timer), resolve(r)),
        (e: unknown) => (clearTimeout(timer), reject(e)),
      );
    });
  try {
    for (;;) {
      const { done, value } = await read();
      if (done) break;
      await handle.write(value);
      hash.update(value);
      received += value.byteLength;
      report(false);
    }
    await handle.sync();
  } catch (err) {
    void reader.cancel().catch(() => undefined);
    throw err instanceof DownloadError ? err : networkError(err, opts, opts.url, received);
  } finally {
    await handle.close();
  }
  report(true);
  return received;
}

function expectedTotal(opts: DownloadOptions, fetched: Fetched, resumedFrom: number): number | undefined {
  if (opts.expectedSize !== undefined) return opts.expectedSize;
  if (fetched.linkedSize !== undefined) return fetched.linkedSize;
  const h = fetched.response.headers;
  const range = parseContentRange(h.get('content-range'));
  if (range?.total !== undefined) return range.total;
  const length = Number(h.get('content-length') ?? NaN);
  return Number.isSafeInteger(length) ? resumedFrom + length : undefined;
}

/** Parses `bytes start-end/total` (total may be `*`). */
export function parseContentRange(value: string | null): { start: number; end: number; total?: number } | undefined {
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

function networkError(err: unknown, opts: DownloadOptions, url: string, received?: number): DownloadError {
  if (opts.signal?.aborted) {
    return new DownloadError('aborted', `download cancelled${received !== undefined ? ` after ${received} bytes; it resumes from there next time` : ''}`);
  }
  const cause = (err as { cause?: { code?: string; message?: string } }).cause;
  const why = cause?.code ?? cause?.message ?? (err as Error).message;
  return new DownloadError('network', `connection to ${url} failed (${why})${received !== undefined ? ` after ${received} bytes; run the download again to resume` : ''}`);
}

/** If-Range accepts only strong validators. */
function strongEtag(etag: string | null): string | undefined {
  return etag && !etag.startsWith('W/') ? etag : undefined;
}

function unquote(v: string | null): string | undefined {
  if (v === null) return undefined;
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
