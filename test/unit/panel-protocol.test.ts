// The panel's host⇄webview vocabulary: good messages pass typed, hostile or malformed ones are
// rejected with the field named; the HTML has a strict CSP; the page's pure helpers.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { panelHtml } from '../../src/panel/panelHtml';
import { applyTrainingEvent, parseHostMessage, parsePanelState, parseWebviewMessage, type PanelState } from '../../src/protocol/webview';
import { DEFAULT_HYPERPARAMETERS } from '../../src/store/task';
import { alignSeries, formatEta, progressFraction } from '../../webview/format';

const hp = { ...DEFAULT_HYPERPARAMETERS };

test('valid webview messages parse to their typed form', () => {
  assert.deepEqual(parseWebviewMessage({ type: 'ready' }), { type: 'ready' });
  assert.deepEqual(parseWebviewMessage({ type: 'updateExample', seq: 3, id: 'ex-1', output: 'bug' }), { type: 'updateExample', seq: 3, id: 'ex-1', output: 'bug' });
  assert.deepEqual(parseWebviewMessage({ type: 'addExample', seq: 1, input: '', output: '' }), { type: 'addExample', seq: 1, input: '', output: '' });
  assert.equal(parseWebviewMessage({ type: 'train', hyperparameters: hp }).type, 'train');
  assert.deepEqual(parseWebviewMessage({ type: 'suggest' }), { type: 'suggest' });
});

test('hostile or malformed webview messages are rejected, naming the problem', () => {
  const cases: [unknown, RegExp][] = [
    [null, /expected an object/],
    ['ready', /expected an object/],
    [[{ type: 'ready' }], /expected an object/],
    [{}, /unknown message type undefined/],
    [{ type: 'deleteAllTasks' }, /unknown message type "deleteAllTasks"/],
    [{ type: '__proto__' }, /unknown message type/],
    [{ type: 'toString' }, /unknown message type/],
    [{ type: 'ready', extra: 1 }, /unknown field "extra"/],
    [{ type: 'updateExample', seq: 1, id: 'ex-1', output: 5 }, /message\.output: expected a string/],
    [{ type: 'updateExample', seq: 1, id: '', output: 'x' }, /message\.id: expected a string of length 1\.\.64/],
    [{ type: 'updateExample', seq: -1, id: 'ex-1' }, /message\.seq/],
    [{ type: 'updateExample', seq: 1.5, id: 'ex-1' }, /message\.seq/],
    [{ type: 'updateExample', seq: 1, id: 'ex-1', heldOut: 'true' }, /message\.heldOut: expected a boolean/],
    [{ type: 'addExample', seq: 1, input: 'x'.repeat(100_001), output: '' }, /message\.input/],
    [{ type: 'removeExample', seq: 1 }, /message\.id/],
    [{ type: 'removeExample', seq: 1, id: '../../etc' }, /message\.id: expected an example id/],
    [{ type: 'updateExample', seq: 1, id: 'ex 1"', output: 'x' }, /message\.id: expected an example id/],
    [{ type: 'train', hyperparameters: { ...hp, epochs: 1e9 } }, /message\.hyperparameters\.epochs/],
    [{ type: 'train', hyperparameters: { ...hp, learningRate: Number.NaN } }, /message\.hyperparameters\.learningRate/],
    [{ type: 'train', hyperparameters: { ...hp, targets: ['q', 'embed_tokens'] } }, /hyperparameters\.targets\[1\]/],
    [{ type: 'train', hyperparameters: { ...hp, __proto__: { polluted: true }, rogue: 1 } }, /unknown field "rogue"/],
    [{ type: 'suggest', ids: Array.from({ length: 10_001 }, () => 'ex-1') }, /at most 10000 items/],
  ];
  for (const [msg, pattern] of cases) {
    assert.throws(() => parseWebviewMessage(msg), pattern, JSON.stringify(msg)?.slice(0, 80));
  }
});

function state(): PanelState {
  return {
    task: { id: 't', name: 'T', kind: 'classify', instruction: 'c', labels: ['a', 'b'], hyperparameters: hp, hasAdapter: false },
    examples: [{ id: 'ex-1', input: 'x', output: 'a', heldOut: false }],
    problems: [],
    capabilities: { train: false, suggest: false, reason: 'no engine' },
    training: null,
    suggestions: [],
  };
}

test('host messages are checked by the page too', () => {
  const ok = parseHostMessage({ type: 'state', state: state(), restore: { folder: '/w', taskId: 't' } });
  assert.equal(ok.type, 'state');
  assert.throws(() => parseHostMessage({ type: 'state', state: { ...state(), examples: [{ id: 'ex-1' }] }, restore: { folder: '/w', taskId: 't' } }), /message\.state\.examples\[0\]\.input/);
  assert.throws(() => parseHostMessage({ type: 'ack', seq: 1 }), /message\.ok: expected a boolean/);
  assert.throws(() => parseHostMessage({ type: 'training', event: { kind: 'step', loss: 'NaN' } }), /message\.event\.loss/);
  assert.throws(() => parsePanelState({ ...state(), capabilities: { train: 'yes', suggest: false } }), /state\.capabilities\.train/);
});

test('training events fold into the view the chart draws', () => {
  let v = applyTrainingEvent(null, { kind: 'start', totalSteps: 10 });
  v = applyTrainingEvent(v, { kind: 'step', step: 1, loss: 2.5, epoch: 0.2, etaSeconds: 30 });
  v = applyTrainingEvent(v, { kind: 'step', step: 2, loss: 2.1, epoch: 0.4, etaSeconds: 25 });
  v = applyTrainingEvent(v, { kind: 'eval', step: 2, valLoss: 2.3 });
  assert.deepEqual(v.trainLoss, [[1, 2.5], [2, 2.1]]);
  assert.deepEqual(v.valLoss, [[2, 2.3]]);
  assert.equal(v.status, 'running');
  assert.equal(v.etaSeconds, 25);
  const before = v;
  v = applyTrainingEvent(v, { kind: 'done', bestStep: 2, comparison: [{ id: 'ex-1', input: 'x', expected: 'a', before: 'b', after: 'a' }] });
  assert.equal(v.status, 'done');
  assert.equal(v.bestStep, 2);
  assert.equal(v.etaSeconds, null);
  assert.equal(before.status, 'running', 'the previous view is not mutated');
  assert.equal(applyTrainingEvent(v, { kind: 'start' }).trainLoss.length, 0, 'a new run starts a fresh view');
});

test('the panel HTML has a strict CSP with a nonce and escapes what it embeds', () => {
  const html = panelHtml({ cspSource: 'https://x.vscode-cdn.net', scriptUri: 'https://x/dist/webview.js', styleUris: ['https://x/a.css'], title: '<T>', nonce: 'abc123' });
  const csp = html.match(/Content-Security-Policy" content="([^"]+)"/)?.[1] ?? '';
  assert.match(csp, /default-src 'none'/);
  assert.match(csp, /script-src 'nonce-abc123'(;|$)/);
  assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval|\*/);
  assert.match(html, /<script nonce="abc123" src="https:\/\/x\/dist\/webview.js"><\/script>/);
  assert.match(html, /<title>&#60;T&#62;<\/title>/);
  const a = panelHtml({ cspSource: 's', scriptUri: 'u', styleUris: [], title: 't' });
  const b = panelHtml({ cspSource: 's', scriptUri: 'u', styleUris: [], title: 't' });
  assert.notEqual(a.match(/nonce-([^']+)/)?.[1], b.match(/nonce-([^']+)/)?.[1], 'a fresh nonce per page');
});

test('page helpers: ETA text, aligned loss series, progress', () => {
  assert.equal(formatEta(null), '');
  assert.equal(formatEta(12.4), '12 s');
  assert.equal(formatEta(65), '1:05 min');
  assert.equal(formatEta(3720), '1 h 02 min');
  assert.deepEqual(alignSeries([[1, 3], [2, 2], [3, 1.5]], [[2, 2.4]]), [[1, 2, 3], [3, 2, 1.5], [null, 2.4, null]]);
  assert.equal(progressFraction(5, 10), 0.5);
  assert.equal(progressFraction(5, 0), 0);
  assert.equal(progressFraction(15, 10), 1);
});
