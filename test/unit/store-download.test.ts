// Model download against real HTTP servers on 127.0.0.1: resume, Range-less servers, redirects
// with Hugging Face's X-Linked-* headers, checksum and size failures, HTTP errors, cancel.
import { createHash, randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as path from 'node:path';
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { findModel, ensureModel } from '../../src/store/modelCache';
import { DownloadError, downloadFile, DownloadProgress, parseContentRange, partPath } from '../../src/store/modelDownload';
import { DEFAULT_MODEL, manifestUrl, ModelManifest } from '../../src/store/modelManifest';
import { tempDir } from './temp-helpers';

const BODY = randomBytes(3 * 1024 * 1024 + 123);
const SHA = createHash('sha256').update(BODY).digest('hex');

interface Seen {
  url: string;
  range?: string;
  ifRange?: string;
  authorization?: string;
}

interface Server {
  base: string;
  host: string;
  seen: Seen[];
  /** Per-test behaviour switches. */
  state: { cutNext: number; etag: string; rangeSupport: boolean; slow: boolean; redirectTo?: string; linkedEtag: string; linkedSize: number };
  close(): Promise<void>;
}

const servers: Server[] = [];
after(async () => {
  for (const s of servers) await s.close();
});

/** A small file server with the behaviours the tests switch on. */
async function startServer(): Promise<Server> {
  const seen: Seen[] = [];
  const state: Server['state'] = { cutNext: 0, etag: '"v1"', rangeSupport: true, slow: false, linkedEtag: SHA, linkedSize: BODY.length };
  const server = http.createServer((req, res) => {
    seen.push({ url: req.url ?? '', range: req.headers.range, ifRange: req.headers['if-range'] as string | undefined, authorization: req.headers.authorization });
    const url = req.url ?? '';
    if (url === '/missing') return void res.writeHead(404, 'Not Found').end('nope');
    if (url === '/private') {
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
    if (url.startsWith('/cdn/file') || url === '/file') return serveFile(req, res);
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

  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  const s: Server = {
    base: `http://127.0.0.1:${port}`,
    host: `127.0.0.1:${port}`,
    seen,
    state,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
  servers.push(s);
  return s;
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
  return (err: unknown) => err instanceof DownloadError && err.code === code && (!pattern || pattern.test(err.message));
}

test('full download: verified by the manifest sha256, progress reported, nothing left over', async () => {
  const srv = await startServer();
  const dest = await tmpDest();
  const progress: DownloadProgress[] = [];
  const res = await downloadFile({ url: `${srv.base}/file`, dest, expectedSize: BODY.length, expectedSha256: SHA, onProgress: (p) => progress.push(p) });
  assert.deepEqual(await fs.readFile(dest), BODY);
  assert.equal(res.sha256, SHA);
  assert.equal(res.verifiedBy, 'manifest');
  assert.equal(res.resumedFrom, 0);
  assert.deepEqual(await ls(dest), ['model.gguf']);
  assert.equal(progress[0].received, 0);
  assert.equal(progress.at(-1)?.received, BODY.length);
  assert.equal(progress.at(-1)?.total, BODY.length);
  assert.ok(progress.every((p, i) => i === 0 || p.received >= progress[i - 1].received));
});

test('an interrupted transfer keeps the part file and resumes with a Range request', async () => {
  const srv = await startServer();
  const dest = await tmpDest();
  srv.state.cutNext = 1024 * 1024;
  await assert.rejects(downloadFile({ url: `${srv.base}/file`, dest, expectedSha256: SHA }), rejectsWith('network', /run the download again to resume/));
  const partial = await fs.stat(partPath(dest));
  // Not always the whole 1 MiB sent: chunks still queued in fetch's stream when the socket drops are lost.
  assert.ok(partial.size > 0 && partial.size <= 1024 * 1024, `part holds ${partial.size} bytes`);
  assert.deepEqual(await ls(dest), ['model.gguf.part', 'model.gguf.part.json']);

  const res = await downloadFile({ url: `${srv.base}/file`, dest, expectedSha256: SHA });
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
  await assert.rejects(downloadFile({ url: `${srv.base}/file`, dest, expectedSha256: SHA }), rejectsWith('network'));
  const res = await downloadFile({ url: `${srv.base}/file`, dest, expectedSha256: SHA });
  assert.equal(res.resumedFrom, 0);
  assert.ok(srv.seen.at(-1)!.range, 'a resume was asked for');
  assert.deepEqual(await fs.readFile(dest), BODY);
});

test('a file changed upstream (ETag differs) restarts instead of splicing two versions', async () => {
  const srv = await startServer();
  const dest = await tmpDest();
  srv.state.cutNext = 700_000;
  await assert.rejects(downloadFile({ url: `${srv.base}/file`, dest }), rejectsWith('network'));
  srv.state.etag = '"v2"'; // If-Range "v1" no longer matches: the server answers 200 with the whole file
  const res = await downloadFile({ url: `${srv.base}/file`, dest });
  assert.equal(res.resumedFrom, 0);
  assert.deepEqual(await fs.readFile(dest), BODY);
});

test('a part file that is already complete (416) is discarded and fetched again', async () => {
  const srv = await startServer();
  const dest = await tmpDest();
  await fs.writeFile(partPath(dest), Buffer.concat([BODY, Buffer.from('junk')]));
  await fs.writeFile(`${partPath(dest)}.json`, JSON.stringify({ url: `${srv.base}/file`, etag: '"v1"' }));
  const res = await downloadFile({ url: `${srv.base}/file`, dest, expectedSha256: SHA });
  assert.equal(res.resumedFrom, 0);
  assert.deepEqual(await fs.readFile(dest), BODY);
});

test('a wrong checksum deletes the download and keeps the good file that was there', async () => {
  const srv = await startServer();
  const dest = await tmpDest();
  await fs.writeFile(dest, 'the previous, good model');
  const wrong = 'f'.repeat(64);
  await assert.rejects(downloadFile({ url: `${srv.base}/file`, dest, expectedSha256: wrong }), rejectsWith('checksum', new RegExp(`${SHA} does not match the expected ${wrong}`)));
  assert.equal(await fs.readFile(dest, 'utf8'), 'the previous, good model');
  assert.deepEqual(await ls(dest), ['model.gguf']);
});

test('a wrong size is refused and the partial file deleted', async () => {
  const srv = await startServer();
  const dest = await tmpDest();
  await assert.rejects(downloadFile({ url: `${srv.base}/file`, dest, expectedSize: BODY.length + 1 }), rejectsWith('size', new RegExp(`got ${BODY.length} bytes, expected ${BODY.length + 1}`)));
  assert.deepEqual(await ls(dest), []);
});

test('HTTP 404 and 401 are clear errors; the token is sent and then accepted', async () => {
  const srv = await startServer();
  const dest = await tmpDest();
  await assert.rejects(downloadFile({ url: `${srv.base}/missing`, dest }), (err: unknown) => err instanceof DownloadError && err.status === 404 && /HTTP 404 Not Found for http:\/\/127\.0\.0\.1:\d+\/missing/.test(err.message));
  await assert.rejects(downloadFile({ url: `${srv.base}/private`, dest }), (err: unknown) => err instanceof DownloadError && err.status === 401 && /Hugging Face token/.test(err.message));
  await assert.rejects(downloadFile({ url: `${srv.base}/private`, dest, token: 'bad' }), rejectsWith('http'));
  const res = await downloadFile({ url: `${srv.base}/private`, dest, token: 'good-token' });
  assert.equal(res.sha256, SHA);
  assert.deepEqual(await ls(dest), ['model.gguf']);
});

test('cancel mid-way keeps the part; the next call resumes it', async () => {
  const srv = await startServer();
  const dest = await tmpDest();
  srv.state.slow = true;
  const ac = new AbortController();
  await assert.rejects(
    downloadFile({
      url: `${srv.base}/file`,
      dest,
      signal: ac.signal,
      onProgress: (p) => {
        if (p.received > 256 * 1024) ac.abort();
      },
    }),
    rejectsWith('aborted', /cancelled after \d+ bytes/),
  );
  const partial = (await fs.stat(partPath(dest))).size;
  assert.ok(partial > 0 && partial < BODY.length);
  srv.state.slow = false;
  const res = await downloadFile({ url: `${srv.base}/file`, dest, expectedSha256: SHA });
  assert.equal(res.resumedFrom, partial);
  assert.deepEqual(await fs.readFile(dest), BODY);
});

test('a stalled connection times out and keeps the part', async () => {
  const dest = await tmpDest();
  const stall = http.createServer((_req, res) => {
    res.writeHead(200, { 'content-length': BODY.length });
    res.write(BODY.subarray(0, 1000)); // then nothing
  });
  await new Promise<void>((r) => stall.listen(0, '127.0.0.1', r));
  try {
    const url = `http://127.0.0.1:${(stall.address() as AddressInfo).port}/`;
    await assert.rejects(downloadFile({ url, dest, idleTimeoutMs: 300 }), rejectsWith('network', /no data for 0\.3 s .* after 1000 bytes/));
    assert.equal((await fs.stat(partPath(dest))).size, 1000);
  } finally {
    stall.closeAllConnections();
    stall.close();
  }
});

test('redirect to a CDN: X-Linked-Etag/Size verify the file when the manifest has no sha256; the token stays on its host', async () => {
  const hub = await startServer();
  const cdn = await startServer();
  hub.state.redirectTo = `${cdn.base}/cdn/file?signed=abc`;
  const dest = await tmpDest();
  const res = await downloadFile({ url: `${hub.base}/resolve/main/model.gguf`, dest, token: 'secret' });
  assert.equal(res.verifiedBy, 'x-linked-etag');
  assert.deepEqual(await fs.readFile(dest), BODY);
  assert.equal(hub.seen.at(-1)!.authorization, 'Bearer secret');
  assert.equal(cdn.seen.at(-1)!.authorization, undefined, 'the token is not sent to another host');
  assert.equal(cdn.seen.at(-1)!.url, '/cdn/file?signed=abc');

  // A linked sha256 that does not match the bytes is a checksum failure.
  hub.state.linkedEtag = 'a'.repeat(64);
  const dest2 = await tmpDest();
  await assert.rejects(downloadFile({ url: `${hub.base}/resolve/main/model.gguf`, dest: dest2 }), rejectsWith('checksum'));
  assert.deepEqual(await ls(dest2), []);
  // And a linked size that does not match is a size failure.
  hub.state.linkedEtag = SHA;
  hub.state.linkedSize = 10;
  await assert.rejects(downloadFile({ url: `${hub.base}/resolve/main/model.gguf`, dest: dest2 }), rejectsWith('size'));
});

test('redirect loops and non-HTTP redirects are refused', async () => {
  const srv = await startServer();
  const dest = await tmpDest();
  await assert.rejects(downloadFile({ url: `${srv.base}/loop`, dest, maxRedirects: 3 }), rejectsWith('redirect', /more than 3 redirects/));
  await assert.rejects(downloadFile({ url: `${srv.base}/ftp`, dest }), rejectsWith('redirect', /ftp:/));
  await assert.rejects(downloadFile({ url: `${srv.base}/file`, dest, expectedSha256: 'xyz' }), /64 hex digits/);
});

test('ensureModel downloads once into global storage, then finds the verified file', async () => {
  const srv = await startServer();
  const storage = await fs.mkdtemp(path.join(root, 'storage-'));
  const manifest: ModelManifest = { id: 'test-model', title: 't', repo: 'org/repo', revision: 'main', file: 'm.gguf', size: BODY.length, sha256: SHA, gated: false };
  srv.state.redirectTo = '/cdn/file';
  assert.equal(await findModel(storage, manifest), undefined);
  const first = await ensureModel(storage, manifest, { endpoint: `${srv.base}/` });
  assert.ok(first.download);
  assert.equal(first.path, path.join(storage, 'models', 'test-model', 'm.gguf'));
  const requests = srv.seen.length;
  const second = await ensureModel(storage, manifest, { endpoint: srv.base });
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
