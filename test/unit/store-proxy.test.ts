// Which proxy the download uses: VS Code's http.* settings over the environment, noProxy matching
// (names, domains, ports, IPs and CIDRs), credentials, and proxies that cannot be used.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DownloadError } from '../../src/store/downloadError';
import { bypasses, DIRECT, proxyRoute, proxySettingsFromEnv, proxySettingsFromVscode } from '../../src/store/proxySettings';

const HF = new URL('https://huggingface.co/org/repo/resolve/main/m.gguf');

test('the environment: https_proxy before HTTPS_PROXY before http_proxy, NO_PROXY split on commas', () => {
  assert.deepEqual(proxySettingsFromEnv({}), { proxy: undefined, noProxy: [], strictSSL: true });
  assert.equal(proxySettingsFromEnv({ HTTP_PROXY: 'http://c:3', http_proxy: 'http://b:2', HTTPS_PROXY: 'http://a:1' }).proxy, 'http://a:1');
  assert.equal(proxySettingsFromEnv({ https_proxy: 'http://lower:1', HTTPS_PROXY: 'http://upper:1' }).proxy, 'http://lower:1');
  assert.equal(proxySettingsFromEnv({ HTTP_PROXY: 'http://only-http:8080' }).proxy, 'http://only-http:8080');
  assert.deepEqual(proxySettingsFromEnv({ NO_PROXY: 'localhost, .corp.example,10.0.0.0/8' }).noProxy, ['localhost', '.corp.example', '10.0.0.0/8']);
});

test('VS Code settings: http.proxy wins over the environment, noProxy lists add up, bad values are named', () => {
  const env = { HTTPS_PROXY: 'http://env-proxy:3128', NO_PROXY: 'internal.example' };
  const fromSettings = proxySettingsFromVscode({ proxy: 'http://settings-proxy:8080', noProxy: ['a.example'], proxyStrictSSL: false, proxyAuthorization: 'Basic eA==' }, env);
  assert.deepEqual(fromSettings, {
    settings: { proxy: 'http://settings-proxy:8080', noProxy: ['internal.example', 'a.example'], strictSSL: false, authorization: 'Basic eA==' },
    problems: [],
  });
  // Empty http.proxy (VS Code's default): the environment's, as VS Code does.
  assert.equal(proxySettingsFromVscode({ proxy: '', noProxy: [], proxyStrictSSL: true, proxyAuthorization: null }, env).settings.proxy, 'http://env-proxy:3128');
  assert.equal(proxySettingsFromVscode({ proxy: '' }, {}).settings.proxy, undefined);
  const bad = proxySettingsFromVscode({ proxy: 42, noProxy: 'x', proxyStrictSSL: 'no', proxyAuthorization: 7 }, {});
  assert.deepEqual(bad.settings, { proxy: undefined, noProxy: [], strictSSL: true, authorization: undefined });
  assert.equal(bad.problems.length, 4);
  assert.match(bad.problems.join('\n'), /http\.proxy .*\n.*http\.noProxy .*\n.*http\.proxyStrictSSL .*using true\n.*http\.proxyAuthorization/);
});

test('noProxy: exact names, domains with or without a dot or star, ports, IPs, CIDRs, and *', () => {
  assert.equal(bypasses('huggingface.co', 443, ['huggingface.co']), true);
  assert.equal(bypasses('cdn-lfs.huggingface.co', 443, ['huggingface.co']), true, 'a domain covers its subdomains');
  assert.equal(bypasses('cdn-lfs.huggingface.co', 443, ['.huggingface.co']), true);
  assert.equal(bypasses('cdn-lfs.huggingface.co', 443, ['*.huggingface.co']), true);
  assert.equal(bypasses('nothuggingface.co', 443, ['huggingface.co']), false, 'a suffix is not a subdomain');
  assert.equal(bypasses('HuggingFace.CO', 443, ['huggingface.co']), true, 'case does not matter');
  assert.equal(bypasses('huggingface.co', 443, ['huggingface.co:8443']), false);
  assert.equal(bypasses('huggingface.co', 8443, ['huggingface.co:8443']), true);
  assert.equal(bypasses('10.1.2.3', 443, ['10.0.0.0/8']), true);
  assert.equal(bypasses('11.1.2.3', 443, ['10.0.0.0/8']), false);
  assert.equal(bypasses('192.168.1.5', 443, ['192.168.1.5']), true);
  assert.equal(bypasses('fd00::5', 443, ['fd00::/8']), true);
  assert.equal(bypasses('[fd00::5]', 443, ['[fd00::5]:443']), true);
  assert.equal(bypasses('anything.example', 443, ['*']), true);
  assert.equal(bypasses('huggingface.co', 443, ['', ' ']), false);
});

test('the route: none without a proxy, for this machine or a noProxy host; credentials from the URL; only http:// proxies', () => {
  assert.equal(proxyRoute(HF, DIRECT), undefined);
  const s = { proxy: 'http://user:p%40ss@proxy.corp:3128', noProxy: ['internal.example'], strictSSL: true };
  assert.deepEqual(proxyRoute(HF, s), { host: 'proxy.corp', port: 3128, authorization: `Basic ${Buffer.from('user:p@ss').toString('base64')}`, strictSSL: true, display: 'http://proxy.corp:3128' });
  assert.equal(proxyRoute(new URL('https://localhost:8443/x'), s), undefined);
  assert.equal(proxyRoute(new URL('https://127.0.0.1/x'), s), undefined);
  assert.equal(proxyRoute(new URL('https://[::1]/x'), s), undefined);
  assert.equal(proxyRoute(new URL('https://a.internal.example/x'), s), undefined);
  // No scheme means http://, port 80 by default; http.proxyAuthorization overrides URL credentials.
  assert.deepEqual(proxyRoute(HF, { proxy: 'proxy.corp', noProxy: [], strictSSL: false, authorization: 'Negotiate abc' }), { host: 'proxy.corp', port: 80, authorization: 'Negotiate abc', strictSSL: false, display: 'http://proxy.corp' });
  for (const bad of ['https://proxy.corp:443', 'socks5://proxy.corp:1080', 'socks://p:1']) {
    assert.throws(() => proxyRoute(HF, { proxy: bad, noProxy: [], strictSSL: true }), (e: unknown) => e instanceof DownloadError && e.code === 'proxy' && /not supported: only http:\/\//.test(e.message));
  }
  assert.throws(() => proxyRoute(HF, { proxy: 'http://user:secret@[bad', noProxy: [], strictSSL: true }), (e: unknown) => e instanceof DownloadError && /not a URL/.test(e.message) && !e.message.includes('secret'));
});
