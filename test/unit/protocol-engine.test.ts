// The host⇄worker vocabulary: what each side accepts, and how it names what is wrong.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CheckError, num, obj, optional, str } from '../../src/common/check';
import { parseEvent, parseHostToWorker, parseResult, parseWorkerToHost } from '../../src/protocol/engine';

function problem(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof CheckError, `expected CheckError, got ${String(e)}`);
    return e.message;
  }
  assert.fail('expected a CheckError');
}

test('a valid request comes back typed, with defaults for absent params', () => {
  assert.deepEqual(parseHostToWorker({ kind: 'request', id: 7, method: 'status' }), {
    kind: 'request',
    id: 7,
    method: 'status',
    params: {},
  });
  assert.deepEqual(parseHostToWorker({ kind: 'request', id: 1, method: 'ping', params: { delayMs: 5 } }).kind, 'request');
  assert.deepEqual(parseHostToWorker({ kind: 'cancel', id: 3 }), { kind: 'cancel', id: 3 });
});

test('bad requests name the field and the problem', () => {
  assert.match(problem(() => parseHostToWorker(null)), /^message: expected an object, got null/);
  assert.match(problem(() => parseHostToWorker({ kind: 'request', id: -1, method: 'status' })), /message\.id: expected an integer/);
  assert.match(problem(() => parseHostToWorker({ kind: 'request', id: 1, method: 'fly' })), /unknown method "fly" \(known: status, ping/);
  assert.match(problem(() => parseHostToWorker({ kind: 'request', id: 1 })), /message\.method: missing/);
  assert.match(
    problem(() => parseHostToWorker({ kind: 'request', id: 1, method: 'ping', params: { delayMs: 1e9 } })),
    /params\.delayMs: expected a number in \[0, 60000\], got 1000000000/,
  );
  assert.match(
    problem(() => parseHostToWorker({ kind: 'request', id: 1, method: 'ping', params: { delay: 5 } })),
    /params: unknown field "delay" \(expected delayMs, ticks\)/,
  );
  assert.match(problem(() => parseHostToWorker({ kind: 'cancel', id: 1, method: 'ping' })), /a cancel carries only an id/);
  assert.match(problem(() => parseHostToWorker({ kind: 'bogus', id: 1 })), /message\.kind: expected "request" \| "cancel", got "bogus"/);
});

test('worker messages: envelopes, then results and events per method', () => {
  assert.deepEqual(parseWorkerToHost({ kind: 'log', level: 'info', message: 'hi' }), { kind: 'log', level: 'info', message: 'hi' });
  assert.match(problem(() => parseWorkerToHost({ kind: 'response', result: {} })), /message\.id: missing in a response message/);
  assert.match(
    problem(() => parseWorkerToHost({ kind: 'error', id: 1, error: { code: 'oops', message: 'x' } })),
    /message\.error\.code: expected "bad-request" \| "cancelled" \| "not-loaded" \| "failed" \| "worker-exited" \| "crashed" \| "timeout"/,
  );
  assert.deepEqual(parseEvent('ping', { type: 'tick', n: 2 }), { type: 'tick', n: 2 });
  assert.match(problem(() => parseEvent('status', { type: 'tick', n: 1 })), /streams no events/);
  assert.match(problem(() => parseResult('status', { protocol: 1 })), /result\.runtime: expected an object, got undefined/);
});

test('the schema kit: optional keys, string bounds, integer checks, fresh objects', () => {
  const s = obj({ a: str({ min: 1, max: 3 }), b: optional(num({ int: true, min: 0 })) });
  const input = { a: 'xy' };
  const out = s(input);
  assert.deepEqual(out, { a: 'xy' });
  assert.notEqual(out, input);
  assert.match(problem(() => s({ a: '' })), /^a: expected a string of length 1\.\.3, got ""/);
  assert.match(problem(() => s({ a: 'x', b: 1.5 })), /^b: expected an integer >= 0, got 1\.5/);
  assert.match(problem(() => s({ a: 'x', b: Number.NaN })), /^b: expected an integer >= 0, got NaN/);
  assert.match(problem(() => s({ a: 'x'.repeat(100) })), /got a string of length 100/);
});
