// Model download against real HTTPS servers on 127.0.0.1, reached under real host names (a test CA,
// names mapped to 127.0.0.1): resume, Range-less servers, redirects with Hugging Face's X-Linked-*
// headers, where the token may go, https-only hops, the size cap while the body arrives, header and
// trickle timeouts, an HTTP CONNECT proxy, certificate checks, checksum and size failures, cancel.
import { createHash, randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';
import * as net from 'node:net';
import * as path from 'node:path';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { findModel, ensureModel } from '../../src/store/modelCache';
import { DownloadError, downloadFile, type DownloadOptions, DownloadProgress, mayCarryToken, parseContentRange, partPath } from '../../src/store/modelDownload';
import { DEFAULT_MODEL, manifestUrl, ModelManifest } from '../../src/engine/model/modelManifest';
import type { ProxySettings } from '../../src/store/proxySettings';
import { tempDir } from './temp-helpers';
import { listen, makeTestPki, startProxy, toLoopback } from './net-helpers';

const BODY = randomBytes(3 * 1024 * 1024 + 123);
const SHA = createHash('sha256').update(BODY).digest('hex');
const pki = makeTestPki();
/** How every download here connects: the test CA, every name on 127.0.0.1. */
const CONNECT: DownloadOptions['connect'] = { ca: pki.ca, lookup: toLoopback };

interface Seen {
  url: string;
  host?: string;
  range?: string;
  ifRange?: string;
  authorization?: string;
}

interface Server {
  port: number;
  /** `https://<host>:<port><p>`. */
  at(host: string, p?: string): string;
  seen: Seen[];
  /** Per-test behaviour switches. */
  state: {
    cutNext: number;
    etag: string;
    rangeSupport: boolean;
    slow: boolean;
    redirectTo?: string;
    linkedEtag: string;
    linkedSize: number;
    /** Bytes the /flood handlers wrote before the client went away. */
    floodWritten: number;
    floodFinished: boolean;
  };
}

/** An HTTPS file server with the behaviours the tests switch on; `rogue` serves a certificate nobody trusts. */
async function startServer(opts: { rogue?: boolean } = {}): Promise<Server> {
  const seen: Seen[] = [];
  const state: Server['state'] = { cutNext: 0, etag: '"v1"', rangeSupport: true, slow: false, linkedEtag: SHA, linkedSize: BODY.length, floodWritten: 0, floodFinished: false };
  const tlsOpts = opts.rogue ? { key: pki.rogueKey, cert: pki.rogueCert } : { key: pki.key, cert: pki.cert };
  const server = https.createServer(tlsOpts, (req, res) => {
    seen.push({ url: req.url ?? '', host: req.headers.host, range: req.headers.range, ifRange: req.headers['if-range'] as string | undefined, authorization: req.headers.authorization });
    const url = req.url ?? '';
    if (url === '/missing') return void res.writeHead(404, 'Not Found').end('nope');
    if (url.endsWith('/private')) {
      if (req.headers.authorization !== 'Bearer good-token') return void res.writeHead(401, 'Unauthorized').end();
      return serveFile(req, res);
    }
    if (url.includes('/resolve/')) {
      // Hugging Face answers /resolve/ with a redirect to the CDN, carrying the LFS sha256 and size.
      res.writeHead(302, {
        location: state.redirectTo ?? '/cdn/file?signed=1',
        'x-linked-etag': `"${state.linkedEtag}"`,
        'x-linked-size': String(state.linkedSize),
      });
      return void res.end();
    }
    if (url === '/loop') return void res.writeHead(302, { location: '/loop' }).end();
    if (url === '/ftp') return void res.writeHead(302, { location: 'ftp://example.com/x' }).end();
    if (url === '/to' && state.redirectTo) return void res.writeHead(302, { location: state.redirectTo }).end();
    if (url === '/silent') return; // accepts the request, never answers
    if (url === '/trickle') {
      res.writeHead(200, { 'content-length': BODY.length });
      let i = 0;
      const drip = setInterval(() => {
        if (res.destroyed || i >= BODY.length) return void clearInterval(drip);
        res.write(BODY.subarray(i, ++i));
      }, 50);
      return;
    }
    if (url === '/flood' || url === '/flood-announced') {
      // 20 MB where 200 KB are expected; chunked unless announced.
      const headers: http.OutgoingHttpHeaders = url === '/flood-announced' ? { 'content-length': 20_000_000 } : {};
      res.writeHead(200, headers);
      const chunk = Buffer.alloc(64 * 1024, 7);
      const pump = () => {
        while (!res.destroyed && state.floodWritten < 20_000_000) {
          state.floodWritten += chunk.length;
          if (!res.write(chunk)) return void res.once('drain', pump);
        }
        if (!res.destroyed) res.end(() => (state.floodFinished = true));
      };
      return pump();
    }
    if (url === '/short') {
      // A server that says it is done after half the file (chunked, so nothing is "missing").
      res.writeHead(200, { etag: state.etag });
      return void res.end(BODY.subarray(0, BODY.length >> 1));
    }
    if (url.startsWith('/cdn/file') || url.startsWith('/file') || url.startsWith('/new-name/')) return serveFile(req, res);
    res.writeHead(500).end();
  });

  function serveFile(req: http.IncomingMessage, res: http.ServerResponse) {
    let start = 0;
    const range = req.headers.range?.match(/^bytes=(\d+)-$/);
    const ifRange = req.headers['if-range'];
    if (state.rangeSupport && range && (ifRange === undefined || ifRange === state.etag)) start = Number(range[1]);
    if (start >= BODY.length && start > 0) {
      res.writeHead(416, { 'content-range': `bytes */${BODY.length}` });
      return void res.end();
    }
    const headers: http.OutgoingHttpHeaders = { etag: state.etag, 'content-length': BODY.length - start, 'accept-ranges': state.rangeSupport ? 'bytes' : 'none' };
    if (start > 0) headers['content-range'] = `bytes ${start}-${BODY.length - 1}/${BODY.length}`;
    res.writeHead(start > 0 ? 206 : 200, headers);
    const slice = BODY.subarray(start);
    if (state.cutNext > 0) {
      // Send part of the body, then drop the connection like a flaky network.
      const cut = state.cutNext;
      state.cutNext = 0;
      res.write(slice.subarray(0, cut), () => setTimeout(() => res.socket?.destroy(), 20));
      return;
    }
    if (state.slow) {
      let off = 0;
      const tick = () => {
        if (res.destroyed) return;
        if (off >= slice.length) return void res.end();
        res.write(slice.subarray(off, off + 64 * 1024));
        off += 64 * 1024;
        setTimeout(tick, 10);
      };
      return tick();
    }
    res.end(slice);
  }

  const port = await listen(server);
  return { port, at: (host, p = '') => `https://${host}:${port}${p}`, seen, state };
}

/** A plain-HTTP server that records what reaches it (nothing should). */
async function startPlainServer(): Promise<{ port: number; seen: Seen[] }> {
  const seen: Seen[] = [];
  const server = http.createServer((req, res) => {
    seen.push({ url: req.url ?? '', authorization: req.headers.authorization });
    res.end(BODY);
  });
  return { port: await listen(server), seen };
}

const root = tempDir('gemma-dl-');

async function tmpDest(): Promise<string> {
  const dir = await fs.mkdtemp(path.join(root, 'dest-'));
  return path.join(dir, 'model.gguf');
}

async function ls(dest: string): Promise<string[]> {
  return (await fs.readdir(path.dirname(dest))).sort();
}

function rejectsWith(code: string, pattern?: RegExp) {
  return (err: unknown) => {
    assert.ok(err instanceof DownloadError, `a DownloadError, got ${String(err)}`);
    assert.equal(err.code, code, err.message);
    if (pattern) assert.match(err.message, pattern);
    return true;
  };
}

/** downloadFile with the test CA and lookup. */
function download(opts: DownloadOptions) {
  return downloadFile({ connect: CONNECT, ...opts });
}

test('full download: verified by the manifest sha256, progress reported, nothing left over', async () => {
  const srv = await startServer();
  const dest = await tmpDest();
  const progress: DownloadProgress[] = [];
  const res = await download({ url: srv.at('huggingface.co', '/file'), dest, expectedSize: BODY.length, expectedSha256: SHA, onProgress: (p) => progress.push(p) });
  assert.deepEqual(await fs.readFile(dest), BODY);
  assert.equal(res.sha256, SHA);
  assert.equal(res.verifiedBy, 'manifest');
  assert.equal(res.resumedFrom, 0);
  assert.deepEqual(await ls(dest), ['model.gguf']);
  assert.equal(progress[0].received, 0);
  assert.equal(progress.at(-1)?.received, BODY.length);
  assert.equal(progress.at(-1)?.total, BODY.length);
  assert.ok(progress.every((p, i) => i === 0 || p.received >= progress[i - 1].received));
  assert.equal(srv.seen.at(-1)?.host, `huggingface.co:${srv.port}`, 'the Host header names the URL\'s host');
});

test('an interrupted transfer keeps the part file and resumes with a Range request', async () => {
  const srv = await startServer();
  const dest = await tmpDest();
  srv.state.cutNext = 1024 * 1024;
  await assert.rejects(download({ url: srv.at('huggingface.co', '/file'), dest, expectedSha256: SHA }), rejectsWith('network', /broke after \d+ bytes .*run the download again to resume/));
  const partial = await fs.stat(partPath(dest));
  // Not always the whole 1 MiB sent: bytes still in flight when the socket drops are lost.
  assert.ok(partial.size > 0 && partial.size <= 1024 * 1024, `part holds ${partial.size} bytes`);
  assert.deepEqual(await ls(dest), ['model.gguf.part', 'model.gguf.part.json']);

  const res = await download({ url: srv.at('huggingface.co', '/file'), dest, expectedSha256: SHA });
  assert.equal(res.resumedFrom, partial.size);
  const last = srv.seen.at(-1)!;
  assert.equal(last.range, `bytes=${partial.size}-`);
  assert.equal(last.ifRange, '"v1"', 'the ETag validator goes with the Range');
  assert.deepEqual(await fs.readFile(dest), BODY);
  assert.deepEqual(await ls(dest), ['model.gguf']);
});

test('a server without Range support sends the whole file again and the result is still right', async () => {
  const srv = await startServer();
  const dest = await tmpDest();
  srv.state.cutNext = 500_000;
  srv.state.rangeSupport = false;
  await assert.rejects(download({ url: srv.at('huggingface.co', '/file'), dest, expectedSha256: SHA }), rejectsWith('network'));
  const res = await download({ url: srv.at('huggingface.co', '/file'), dest, expectedSha256: SHA });
  assert.equal(res.resumedFrom, 0);
  assert.ok(srv.seen.at(-1)!.range, 'a resume was asked for');
  assert.deepEqual(await fs.readFile(dest), BODY);
});

test('a file changed upstream (ETag differs) restarts instead of splicing two versions', async () => {
  const srv = await startServer();
  const dest = await tmpDest();
  srv.state.cutNext = 700_000;
  await assert.rejects(download({ url: srv.at('huggingface.co', '/file'), dest }), rejectsWith('network'));
  srv.state.etag = '"v2"'; // If-Range "v1" no longer matches: the server answers 200 with the whole file
  const res = await download({ url: srv.at('huggingface.co', '/file'), dest });
  assert.equal(res.resumedFrom, 0);
  assert.deepEqual(await fs.readFile(dest), BODY);
});

test('a part file that is already complete (416) is discarded and fetched again', async () => {
  const srv = await startServer();
  const dest = await tmpDest();
  const url = srv.at('huggingface.co', '/file');
  await fs.writeFile(partPath(dest), Buffer.concat([BODY, Buffer.from('junk')]));
  await fs.writeFile(`${partPath(dest)}.json`, JSON.stringify({ url, etag: '"v1"' }));
  const res = await download({ url, dest, expectedSha256: SHA });
  assert.equal(res.resumedFrom, 0);
  assert.deepEqual(await fs.readFile(dest), BODY);
});

test('a wrong checksum deletes the download and keeps the good model that was there', async () => {
  const srv = await startServer();
  const dest = await tmpDest();
  await fs.writeFile(dest, 'the previous, good model');
  const wrong = 'f'.repeat(64);
  await assert.rejects(download({ url: srv.at('huggingface.co', '/file'), dest, expectedSha256: wrong }), rejectsWith('checksum', new RegExp(`${SHA} does not match the expected ${wrong}`)));
  assert.equal(await fs.readFile(dest, 'utf8'), 'the previous, good model');
  assert.deepEqual(await ls(dest), ['model.gguf']);
});

test('a wrong size is refused and the partial file deleted', async () => {
  const srv = await startServer();
  const dest = await tmpDest();
  await assert.rejects(download({ url: srv.at('huggingface.co', '/file'), dest, expectedSize: BODY.length + 1 }), rejectsWith('size', new RegExp(`got ${BODY.length} bytes, expected ${BODY.length + 1}`)));
  assert.deepEqual(await ls(dest), []);
});

test('a truncated body is a clear error and never replaces a good model', async () => {
  const srv = await startServer();
  const dest = await tmpDest();
  await fs.writeFile(dest, 'the previous, good model');
  // The server ends cleanly after half the file: a size error, the half is deleted.
  await assert.rejects(download({ url: srv.at('huggingface.co', '/short'), dest, expectedSize: BODY.length, expectedSha256: SHA }), rejectsWith('size', new RegExp(`got ${BODY.length >> 1} bytes, expected ${BODY.length}`)));
  assert.deepEqual(await ls(dest), ['model.gguf']);
  assert.equal(await fs.readFile(dest, 'utf8'), 'the previous, good model');
  // The connection drops before Content-Length is reached: a network error, the part kept for a resume.
  srv.state.cutNext = 600_000;
  await assert.rejects(download({ url: srv.at('huggingface.co', '/file'), dest, expectedSize: BODY.length, expectedSha256: SHA }), rejectsWith('network', /run the download again to resume/));
  assert.equal(await fs.readFile(dest, 'utf8'), 'the previous, good model');
  const res = await download({ url: srv.at('huggingface.co', '/file'), dest, expectedSize: BODY.length, expectedSha256: SHA });
  assert.ok(res.resumedFrom > 0);
  assert.deepEqual(await fs.readFile(dest), BODY);
});

test('HTTP 404 and 401 are clear errors; the token is sent to huggingface.co and then accepted', async () => {
  const srv = await startServer();
  const dest = await tmpDest();
  await assert.rejects(download({ url: srv.at('huggingface.co', '/missing'), dest }), (err: unknown) => err instanceof DownloadError && err.status === 404 && /HTTP 404 Not Found for https:\/\/huggingface\.co:\d+\/missing/.test(err.message));
  await assert.rejects(download({ url: srv.at('huggingface.co', '/private'), dest }), (err: unknown) => err instanceof DownloadError && err.status === 401 && /Hugging Face token/.test(err.message));
  await assert.rejects(download({ url: srv.at('huggingface.co', '/private'), dest, token: 'bad' }), rejectsWith('http'));
  const res = await download({ url: srv.at('huggingface.co', '/private'), dest, token: 'good-token' });
  assert.equal(res.sha256, SHA);
  assert.equal(srv.seen.at(-1)!.authorization, 'Bearer good-token');
  assert.deepEqual(await ls(dest), ['model.gguf']);
});

test('cancel mid-body keeps a consistent part; the next call resumes it to the right file', async () => {
  const srv = await startServer();
  const dest = await tmpDest();
  await fs.writeFile(dest, 'the previous, good model');
  srv.state.slow = true;
  const ac = new AbortController();
  await assert.rejects(
    download({
      url: srv.at('huggingface.co', '/file'),
      dest,
      signal: ac.signal,
      onProgress: (p) => {
        if (p.received > 256 * 1024) ac.abort();
      },
    }),
    rejectsWith('aborted', /cancelled after \d+ bytes/),
  );
  const partial = await fs.readFile(partPath(dest));
  assert.ok(partial.length > 0 && partial.length < BODY.length);
  assert.ok(partial.equals(BODY.subarray(0, partial.length)), 'the part is an exact prefix of the file');
  assert.equal(await fs.readFile(dest, 'utf8'), 'the previous, good model');
  srv.state.slow = false;
  const res = await download({ url: srv.at('huggingface.co', '/file'), dest, expectedSha256: SHA });
  assert.equal(res.resumedFrom, partial.length);
  assert.deepEqual(await fs.readFile(dest), BODY);
  assert.deepEqual(await ls(dest), ['model.gguf']);
});

test('a cancel before the answer comes leaves nothing behind', async () => {
  const srv = await startServer();
  const dest = await tmpDest();
  const ac = new AbortController();
  setTimeout(() => ac.abort(), 100);
  await assert.rejects(download({ url: srv.at('huggingface.co', '/silent'), dest, signal: ac.signal }), rejectsWith('aborted'));
  assert.deepEqual(await ls(dest), []);
});

test('a server that never sends headers times out (TLS accepted, or not even that)', async () => {
  const srv = await startServer();
  const dest = await tmpDest();
  let t0 = performance.now();
  await assert.rejects(download({ url: srv.at('huggingface.co', '/silent'), dest, timeouts: { headersMs: 300 } }), rejectsWith('timeout', /no answer from huggingface\.co:\d+ within 0\.3 s/));
  assert.ok(performance.now() - t0 < 2000, `gave up after ${Math.round(performance.now() - t0)} ms`);
  // A TCP server that never starts TLS.
  const mute = net.createServer(() => undefined);
  const port = await listen(mute);
  t0 = performance.now();
  await assert.rejects(download({ url: `https://huggingface.co:${port}/file`, dest, timeouts: { headersMs: 300 } }), rejectsWith('timeout', /within 0\.3 s/));
  assert.ok(performance.now() - t0 < 2000);
  assert.deepEqual(await ls(dest), []);
});

test('a stalled body times out and keeps the part', async () => {
  const dest = await tmpDest();
  const stall = https.createServer({ key: pki.key, cert: pki.cert }, (_req, res) => {
    res.writeHead(200, { 'content-length': BODY.length });
    res.write(BODY.subarray(0, 1000)); // then nothing
  });
  const port = await listen(stall);
  await assert.rejects(download({ url: `https://huggingface.co:${port}/`, dest, timeouts: { stallWindowMs: 300 } }), rejectsWith('timeout', /no data for 0\.3 s from huggingface\.co:\d+ after 1000 bytes/));
  assert.equal((await fs.stat(partPath(dest))).size, 1000);
});

test('a trickling body (a byte every 50 ms) is dropped after one window, keeping its bytes for a resume', async () => {
  const srv = await startServer();
  const dest = await tmpDest();
  const t0 = performance.now();
  await assert.rejects(
    download({ url: srv.at('huggingface.co', '/trickle'), dest, timeouts: { stallWindowMs: 500, minBytesPerSecond: 1000 } }),
    rejectsWith('timeout', /only \d+ bytes in 0\.5 s \(under 1000 bytes\/s\) from huggingface\.co:\d+/),
  );
  const ms = performance.now() - t0;
  assert.ok(ms < 1500, `gave up after ${Math.round(ms)} ms`);
  const part = await fs.readFile(partPath(dest));
  assert.ok(part.length > 0 && part.length < 50 && part.equals(BODY.subarray(0, part.length)), `kept ${part.length} good bytes`);
});

test('the body is capped at the expected size while it arrives', async () => {
  const srv = await startServer();
  const dest = await tmpDest();
  await fs.writeFile(dest, 'the previous, good model');
  // 20 MB (chunked, no length) against an expected 200 KB: cut off mid-stream, nothing kept.
  await assert.rejects(download({ url: srv.at('huggingface.co', '/flood'), dest, expectedSize: 200_000 }), rejectsWith('size', /sent more than the expected 200000 bytes/));
  assert.deepEqual(await ls(dest), ['model.gguf']);
  assert.equal(await fs.readFile(dest, 'utf8'), 'the previous, good model');
  await new Promise((r) => setTimeout(r, 100));
  // Before the cap, the whole 20 MB was read and written, and only then found to be the wrong size.
  assert.equal(srv.state.floodFinished, false, `the server never got to send all 20 MB (it wrote ${srv.state.floodWritten} bytes into the socket)`);
  // An announced 20 MB is refused before a byte of the body is written.
  await assert.rejects(download({ url: srv.at('huggingface.co', '/flood-announced'), dest, expectedSize: 200_000 }), rejectsWith('size', /announces 20000000 bytes, expected 200000/));
  assert.deepEqual(await ls(dest), ['model.gguf']);
  // With no size known at all, the cap is maxSize.
  await assert.rejects(download({ url: srv.at('huggingface.co', '/flood'), dest, maxSize: 1_000_000 }), rejectsWith('size', /more than the expected 1000000 bytes/));
  assert.deepEqual(await ls(dest), ['model.gguf']);
});

test('redirect to the CDN: X-Linked-Etag/Size verify the file; the token goes to huggingface.co only', async () => {
  const hub = await startServer();
  const cdn = await startServer();
  hub.state.redirectTo = cdn.at('cdn-lfs.hf.co', '/cdn/file?signed=abc');
  const dest = await tmpDest();
  const res = await download({ url: hub.at('huggingface.co', '/org/repo/resolve/main/model.gguf'), dest, token: 'secret' });
  assert.equal(res.verifiedBy, 'x-linked-etag');
  assert.deepEqual(await fs.readFile(dest), BODY);
  assert.equal(hub.seen.at(-1)!.authorization, 'Bearer secret');
  assert.equal(cdn.seen.at(-1)!.authorization, undefined, 'the signed CDN URL gets no token');
  assert.equal(cdn.seen.at(-1)!.url, '/cdn/file?signed=abc');

  // Hugging Face's Xet bridge, the other CDN /resolve/ redirects to: no token either.
  hub.state.redirectTo = cdn.at('cas-bridge.xethub.hf.co', '/cdn/file?signed=xet');
  await download({ url: hub.at('huggingface.co', '/org/repo/resolve/main/model.gguf'), dest: await tmpDest(), token: 'secret' });
  assert.equal(cdn.seen.at(-1)!.authorization, undefined);

  // A linked sha256 that does not match the bytes is a checksum failure.
  hub.state.redirectTo = cdn.at('cdn-lfs.hf.co', '/cdn/file?signed=abc');
  hub.state.linkedEtag = 'a'.repeat(64);
  const dest2 = await tmpDest();
  await assert.rejects(download({ url: hub.at('huggingface.co', '/org/repo/resolve/main/model.gguf'), dest: dest2 }), rejectsWith('checksum'));
  assert.deepEqual(await ls(dest2), []);
  // And a linked size that does not match is a size failure.
  hub.state.linkedEtag = SHA;
  hub.state.linkedSize = 10;
  await assert.rejects(download({ url: hub.at('huggingface.co', '/org/repo/resolve/main/model.gguf'), dest: dest2 }), rejectsWith('size'));
});

test('the token is not forwarded to another host, nor sent to a mirror; a rename on the hub keeps it', async () => {
  const hub = await startServer();
  const other = await startServer();
  // The hub redirects to a host that is not Hugging Face's.
  hub.state.redirectTo = other.at('evil.example', '/file');
  await download({ url: hub.at('huggingface.co', '/to'), dest: await tmpDest(), token: 'secret' });
  assert.equal(hub.seen.at(-1)!.authorization, 'Bearer secret');
  assert.equal(other.seen.at(-1)!.url, '/file');
  assert.equal(other.seen.at(-1)!.authorization, undefined);
  // A mirror (any host but huggingface.co / hf.co) never gets it, even as the first hop.
  await download({ url: other.at('mirror.example', '/file'), dest: await tmpDest(), token: 'secret' });
  assert.equal(other.seen.at(-1)!.authorization, undefined);
  // A repository rename redirects within the hub: the token goes along.
  hub.state.redirectTo = '/new-name/model.gguf';
  await download({ url: hub.at('huggingface.co', '/to'), dest: await tmpDest(), token: 'secret' });
  assert.equal(hub.seen.at(-1)!.url, '/new-name/model.gguf');
  assert.equal(hub.seen.at(-1)!.authorization, 'Bearer secret');
  // The rule itself.
  assert.equal(mayCarryToken(new URL('https://huggingface.co/x'), true), true);
  assert.equal(mayCarryToken(new URL('https://hf.co/x'), true), true);
  assert.equal(mayCarryToken(new URL('https://huggingface.co/x'), false), false, 'not over an unverified connection');
  assert.equal(mayCarryToken(new URL('http://huggingface.co/x'), true), false);
  assert.equal(mayCarryToken(new URL('https://huggingface.co.evil.example/x'), true), false);
  assert.equal(mayCarryToken(new URL('https://cdn-lfs.hf.co/x'), true), false);
});

test('a redirect from https to http is refused before anything is sent there', async () => {
  const hub = await startServer();
  const plain = await startPlainServer();
  const dest = await tmpDest();
  hub.state.redirectTo = `http://huggingface.co:${plain.port}/file`;
  await assert.rejects(
    download({ url: hub.at('huggingface.co', '/to'), dest, token: 'secret', connect: { ...CONNECT } }),
    rejectsWith('redirect', /https:\/\/huggingface\.co:\d+ redirected to http:\/\/huggingface\.co:\d+: refused, only https:\/\/ is used/),
  );
  assert.deepEqual(plain.seen, [], 'the http server was never contacted');
  assert.deepEqual(await ls(dest), []);
  // An http:// download URL is refused as well.
  await assert.rejects(download({ url: `http://127.0.0.1:${plain.port}/file`, dest }), rejectsWith('redirect', /the download URL is http:\/\/127\.0\.0\.1:\d+: refused/));
  assert.deepEqual(plain.seen, []);
});

test('redirect loops and non-HTTP redirects are refused', async () => {
  const srv = await startServer();
  const dest = await tmpDest();
  await assert.rejects(download({ url: srv.at('huggingface.co', '/loop'), dest, maxRedirects: 3 }), rejectsWith('redirect', /more than 3 redirects/));
  await assert.rejects(download({ url: srv.at('huggingface.co', '/ftp'), dest }), rejectsWith('redirect', /redirected to ftp:\/\/example\.com: refused/));
  await assert.rejects(download({ url: srv.at('huggingface.co', '/file'), dest, expectedSha256: 'xyz' }), /64 hex digits/);
});

test('through an HTTP CONNECT proxy: every hop tunnelled, the token only inside TLS', async () => {
  const hub = await startServer();
  const cdn = await startServer();
  const proxy = await startProxy({ requireAuth: `Basic ${Buffer.from('me:p@ss').toString('base64')}` });
  hub.state.redirectTo = cdn.at('cdn-lfs.hf.co', '/cdn/file?signed=abc');
  const dest = await tmpDest();
  const settings: ProxySettings = { proxy: proxy.url.replace('//', '//me:p%40ss@'), noProxy: [], strictSSL: true };
  const res = await download({ url: hub.at('huggingface.co', '/org/repo/resolve/main/model.gguf'), dest, token: 'hf_secret_token', proxy: settings });
  assert.deepEqual(await fs.readFile(dest), BODY);
  assert.equal(res.verifiedBy, 'x-linked-etag');
  assert.deepEqual(proxy.connects.map((c) => c.target), [`huggingface.co:${hub.port}`, `cdn-lfs.hf.co:${cdn.port}`], 'both hops went through the proxy, by name');
  assert.ok(proxy.connects.every((c) => c.auth === `Basic ${Buffer.from('me:p@ss').toString('base64')}`), 'the proxy credentials from the URL');
  assert.equal(hub.seen.at(-1)!.authorization, 'Bearer hf_secret_token', 'the hub got the token through the tunnel');
  const seenByProxy = Buffer.concat(proxy.tunnelled);
  assert.ok(seenByProxy.length > 0);
  assert.equal(seenByProxy.includes('hf_secret_token'), false, 'the proxy never saw the token in clear');
  assert.equal(seenByProxy.includes('/resolve/'), false, 'nor the path');

  // Without the credentials the proxy answers 407: a clear error that says what to do.
  await assert.rejects(download({ url: hub.at('huggingface.co', '/file'), dest: await tmpDest(), proxy: { ...settings, proxy: proxy.url } }), rejectsWith('proxy', /refused a tunnel to huggingface\.co:\d+: HTTP 407 .*http:\/\/user:password@host:port/));
  // http.proxyAuthorization is sent as it is.
  await download({ url: hub.at('huggingface.co', '/file'), dest: await tmpDest(), proxy: { ...settings, proxy: proxy.url, authorization: `Basic ${Buffer.from('me:p@ss').toString('base64')}` } });
});

test('noProxy hosts and this machine are reached directly; unsupported proxies are named', async () => {
  const hub = await startServer();
  const proxy = await startProxy();
  await download({ url: hub.at('huggingface.co', '/file'), dest: await tmpDest(), proxy: { proxy: proxy.url, noProxy: ['.huggingface.co'], strictSSL: true } });
  await download({ url: `https://127.0.0.1:${hub.port}/file`, dest: await tmpDest(), proxy: { proxy: proxy.url, noProxy: [], strictSSL: true } });
  assert.deepEqual(proxy.connects, [], 'the proxy saw nothing');
  await download({ url: hub.at('huggingface.co', '/file'), dest: await tmpDest(), proxy: { proxy: proxy.url, noProxy: ['other.example'], strictSSL: true } });
  assert.equal(proxy.connects.length, 1);
  await assert.rejects(download({ url: hub.at('huggingface.co', '/file'), dest: await tmpDest(), proxy: { proxy: 'socks5://127.0.0.1:1080', noProxy: [], strictSSL: true } }), rejectsWith('proxy', /socks5:\/\/127\.0\.0\.1:1080 is not supported: only http:\/\//));
  await assert.rejects(download({ url: hub.at('huggingface.co', '/file'), dest: await tmpDest(), proxy: { proxy: 'http://127.0.0.1:1', noProxy: [], strictSSL: true } }), rejectsWith('proxy', /cannot reach the proxy http:\/\/127\.0\.0\.1:1 \(ECONNREFUSED\)/));
});

test('certificates: an untrusted one is refused; through a proxy with strictSSL off it is accepted but gets no token', async () => {
  const rogue = await startServer({ rogue: true });
  const proxy = await startProxy();
  const dest = await tmpDest();
  await assert.rejects(download({ url: rogue.at('huggingface.co', '/private'), dest, token: 'good-token' }), rejectsWith('tls', /certificate of huggingface\.co:\d+ is not trusted/));
  const strict: ProxySettings = { proxy: proxy.url, noProxy: [], strictSSL: true };
  await assert.rejects(download({ url: rogue.at('huggingface.co', '/file'), dest, token: 'good-token', proxy: strict }), rejectsWith('tls', /not trusted .*http\.proxyStrictSSL/));
  assert.deepEqual(rogue.seen, [], 'nothing was sent to it');
  // The user turned checking off for the proxy (one that re-signs HTTPS): the file still comes, checked by its sha256, without the token.
  const res = await download({ url: rogue.at('huggingface.co', '/file'), dest, token: 'good-token', expectedSha256: SHA, proxy: { ...strict, strictSSL: false } });
  assert.equal(res.sha256, SHA);
  assert.equal((rogue.seen as Seen[]).at(-1)?.authorization, undefined);
  assert.equal(rogue.seen.length, 1);
});

test('ensureModel downloads once into global storage, then finds the verified file', async () => {
  const srv = await startServer();
  const storage = await fs.mkdtemp(path.join(root, 'storage-'));
  const manifest: ModelManifest = { id: 'test-model', title: 't', repo: 'org/repo', revision: 'main', file: 'm.gguf', size: BODY.length, sha256: SHA, gated: false };
  srv.state.redirectTo = '/cdn/file';
  assert.equal(await findModel(storage, manifest), undefined);
  const first = await ensureModel(storage, manifest, { endpoint: `${srv.at('huggingface.co')}/`, connect: CONNECT });
  assert.ok(first.download);
  assert.equal(first.path, path.join(storage, 'models', 'test-model', 'm.gguf'));
  const requests = srv.seen.length;
  const second = await ensureModel(storage, manifest, { endpoint: srv.at('huggingface.co'), connect: CONNECT });
  assert.equal(second.download, undefined);
  assert.equal(srv.seen.length, requests, 'no network use when the model is present');
  // A file truncated behind our back is no longer "present".
  await fs.truncate(first.path, 10);
  assert.equal(await findModel(storage, manifest), undefined);
});

test('the default manifest points at the pinned Hugging Face file', () => {
  assert.equal(
    manifestUrl(DEFAULT_MODEL),
    'https://huggingface.co/ggml-org/gemma-3-270m-it-qat-GGUF/resolve/7dba9faa7cdb58c7dc44b238c7dbb00e391fbf65/gemma-3-270m-it-qat-Q4_0.gguf',
  );
  assert.equal(DEFAULT_MODEL.size, 241_410_624);
  assert.match(DEFAULT_MODEL.sha256 ?? '', /^[0-9a-f]{64}$/);
  assert.deepEqual(parseContentRange('bytes 5-9/10'), { start: 5, end: 9, total: 10 });
  assert.deepEqual(parseContentRange('bytes 5-9/*'), { start: 5, end: 9, total: undefined });
  assert.equal(parseContentRange('items 1-2/3'), undefined);
});
