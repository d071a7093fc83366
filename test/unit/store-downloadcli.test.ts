// `gemma-tune download-model`, run as a process: the proxy from HTTPS_PROXY (a CONNECT proxy on
// 127.0.0.1 standing in for the network, carrying huggingface.co:443 and the CDN to a test server
// whose certificate the process trusts through NODE_EXTRA_CA_CERTS), HF_TOKEN sent to the hub only,
// inside the tunnel, and a one-line error when the file is not there.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as https from 'node:https';
import * as path from 'node:path';
import { test } from 'node:test';
import { DEFAULT_MODEL, manifestUrl } from '../../src/engine/model/modelManifest';
import { listen, makeTestPki, startProxy } from './net-helpers';
import { tempDir } from './temp-helpers';

const ROOT = path.join(__dirname, '../..');

function cli(args: string[], env: NodeJS.ProcessEnv): Promise<{ code: number | null; stdout: string; stderr: string }> {
  // Asynchronous: the servers this test starts live in this process and must keep answering.
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(ROOT, 'src/cli/main.ts'), ...args], { cwd: ROOT, env: { ...process.env, ...env } });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d) => (stderr += d));
  return new Promise((resolve) => child.on('close', (code) => resolve({ code, stdout, stderr })));
}

test('download-model goes through HTTPS_PROXY, sends HF_TOKEN to huggingface.co only, and names a missing file', async () => {
  const pki = makeTestPki();
  const seen: { host?: string; url?: string; auth?: string }[] = [];
  const server = https.createServer({ key: pki.key, cert: pki.cert }, (req, res) => {
    seen.push({ host: req.headers.host, url: req.url, auth: req.headers.authorization });
    if (req.headers.host === 'huggingface.co') return void res.writeHead(302, { location: 'https://cdn-lfs.hf.co/repos/ab/cd/blob?Signature=x' }).end();
    res.writeHead(404, 'Not Found').end();
  });
  const port = await listen(server);
  const proxy = await startProxy({ portFor: () => port });
  const cache = tempDir('gemma-dlcli-');
  const r = await cli(['download-model', '--cache', cache], {
    HTTPS_PROXY: proxy.url,
    https_proxy: '',
    NO_PROXY: '',
    no_proxy: '',
    HF_TOKEN: 'hf_cli_secret',
    NODE_EXTRA_CA_CERTS: pki.caFile,
  });
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stderr, /through the proxy http:\/\/127\.0\.0\.1:\d+/);
  assert.equal(r.stderr.trim().split('\n').at(-1), `gemma-tune download-model: HTTP 404 Not Found for ${manifestUrl(DEFAULT_MODEL)} — check the model repository and file name`);
  assert.deepEqual(proxy.connects.map((c) => c.target), ['huggingface.co:443', 'cdn-lfs.hf.co:443']);
  assert.deepEqual(seen, [
    { host: 'huggingface.co', url: new URL(manifestUrl(DEFAULT_MODEL)).pathname, auth: 'Bearer hf_cli_secret' },
    { host: 'cdn-lfs.hf.co', url: '/repos/ab/cd/blob?Signature=x', auth: undefined },
  ]);
  assert.equal(Buffer.concat(proxy.tunnelled).includes('hf_cli_secret'), false, 'the proxy never saw the token');
});
