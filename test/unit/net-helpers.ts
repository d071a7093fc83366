// Network fixtures for tests that talk TLS to servers on 127.0.0.1 under real host names
// (huggingface.co, cdn-lfs.hf.co, …):
//   - a throw-away certificate authority, made with the openssl command line (Debian's `openssl`
//     package, also on macOS and in Git for Windows) into a temporary folder, valid for two days,
//     trusted only by the clients the tests hand it to; a second, "rogue" authority signs a
//     certificate for the same names that nothing trusts;
//   - a name lookup that sends every name to 127.0.0.1;
//   - an HTTP CONNECT proxy that records what it sees;
//   - `listen`, which closes the server and its connections when the test file ends.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import type { AddressInfo, LookupFunction } from 'node:net';
import * as path from 'node:path';
import { after } from 'node:test';
import { tempDir } from './temp-helpers';

/** The names the test certificates are valid for. */
export const TEST_HOSTS = ['huggingface.co', 'hf.co', 'cdn-lfs.hf.co', 'cdn-lfs-us-1.hf.co', 'cas-bridge.xethub.hf.co', 'mirror.example', 'evil.example'];

export interface TestPki {
  /** PEM of the trusted test CA, and the file that holds it (for NODE_EXTRA_CA_CERTS). */
  ca: string;
  caFile: string;
  /** Key and certificate for TEST_HOSTS, signed by the test CA. */
  key: string;
  cert: string;
  /** Key and certificate for the same names, signed by an authority nobody trusts. */
  rogueKey: string;
  rogueCert: string;
}

function openssl(cwd: string, args: string[]): void {
  try {
    execFileSync('openssl', args, { cwd, stdio: 'pipe' });
  } catch (e) {
    const err = e as NodeJS.ErrnoException & { stderr?: Buffer };
    if (err.code === 'ENOENT') throw new Error('these tests need the openssl command (Debian/Ubuntu: apt-get install openssl)', { cause: e });
    throw new Error(`openssl ${args[0]} failed: ${err.stderr?.toString().trim() ?? err.message}`, { cause: e });
  }
}

function authority(dir: string, name: string): void {
  openssl(dir, ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.pem`,
    '-days', '2', '-subj', `/CN=${name}`, '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign']);
}

function leaf(dir: string, ca: string, name: string): void {
  const san = [...TEST_HOSTS.map((h) => `DNS:${h}`), 'DNS:localhost', 'IP:127.0.0.1'].join(',');
  fs.writeFileSync(path.join(dir, `${name}.ext`), `subjectAltName=${san}\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n`);
  openssl(dir, ['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', '/CN=huggingface.co']);
  openssl(dir, ['x509', '-req', '-in', `${name}.csr`, '-CA', `${ca}.pem`, '-CAkey', `${ca}.key`, '-set_serial', String(Date.now()), '-days', '2', '-out', `${name}.pem`, '-extfile', `${name}.ext`]);
}

/** Generates the test PKI (once per test file; about 50 ms). */
export function makeTestPki(): TestPki {
  const dir = tempDir('gemma-pki-');
  authority(dir, 'test-ca');
  authority(dir, 'rogue-ca');
  leaf(dir, 'test-ca', 'server');
  leaf(dir, 'rogue-ca', 'rogue');
  const read = (f: string) => fs.readFileSync(path.join(dir, f), 'utf8');
  return { ca: read('test-ca.pem'), caFile: path.join(dir, 'test-ca.pem'), key: read('server.key'), cert: read('server.pem'), rogueKey: read('rogue.key'), rogueCert: read('rogue.pem') };
}

/** A name lookup that sends every host to 127.0.0.1, like curl's --resolve for all names. */
export const toLoopback: LookupFunction = (_hostname, options, callback) => {
  if (options.all) (callback as unknown as (e: null, a: { address: string; family: number }[]) => void)(null, [{ address: '127.0.0.1', family: 4 }]);
  else callback(null, '127.0.0.1', 4);
};

const closers: (() => Promise<void>)[] = [];
after(async () => {
  for (const c of closers) await c();
});

/** Listens on a free port of 127.0.0.1; the server and its open connections close when the file's tests end. */
export function listen(server: net.Server): Promise<number> {
  const sockets = new Set<net.Socket>();
  server.on('connection', (s: net.Socket) => sockets.add(s));
  closers.push(
    () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  );
  return new Promise((r) => server.listen(0, '127.0.0.1', () => r((server.address() as AddressInfo).port)));
}

export interface TestProxy {
  url: string;
  /** CONNECT targets and their Proxy-Authorization. */
  connects: { target: string; auth?: string }[];
  /** Every byte the client sent into any tunnel. */
  tunnelled: Buffer[];
}

/**
 * An HTTP CONNECT proxy that records what it sees and tunnels each target to 127.0.0.1: to the
 * target's own port, or to `portFor(target)` (so `huggingface.co:443` can reach a test server).
 */
export async function startProxy(opts: { requireAuth?: string; portFor?: (target: string) => number } = {}): Promise<TestProxy> {
  const p: TestProxy = { url: '', connects: [], tunnelled: [] };
  const server = http.createServer((_req, res) => res.writeHead(400).end('only CONNECT'));
  server.on('connect', (req: http.IncomingMessage, client: net.Socket, head: Buffer) => {
    const auth = req.headers['proxy-authorization'];
    const target = req.url ?? '';
    p.connects.push({ target, auth });
    if (opts.requireAuth && auth !== opts.requireAuth) {
      return void client.end('HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm="test"\r\n\r\n');
    }
    const port = opts.portFor?.(target) ?? Number(target.split(':').pop());
    const upstream = net.connect(port, '127.0.0.1', () => {
      client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
      if (head.length) upstream.write(head);
      client.on('data', (d: Buffer) => p.tunnelled.push(Buffer.from(d)));
      client.pipe(upstream).pipe(client);
    });
    const drop = () => (client.destroy(), upstream.destroy());
    upstream.on('error', drop);
    client.on('error', drop);
  });
  p.url = `http://127.0.0.1:${await listen(server)}`;
  return p;
}
