// DisposableStore: everything added is disposed once, in order, even when one of them throws; what is
// added after dispose() is disposed at once.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DisposableStore } from '../../src/common/disposables';

const tracked = (log: string[], name: string, fail = false) => ({
  dispose() {
    log.push(name);
    if (fail) throw new Error(`${name} failed`);
  },
});

test('disposes what it holds in the order it was added, and only once', () => {
  const log: string[] = [];
  const store = new DisposableStore();
  const a = store.add(tracked(log, 'a'));
  store.addAll(tracked(log, 'b'), tracked(log, 'c'));
  assert.equal(typeof a.dispose, 'function');
  store.dispose();
  store.dispose();
  assert.deepEqual(log, ['a', 'b', 'c']);
});

test('one that throws does not keep the others alive, and its error comes out', () => {
  const log: string[] = [];
  const store = new DisposableStore();
  store.addAll(tracked(log, 'a'), tracked(log, 'b', true), tracked(log, 'c', true), tracked(log, 'd'));
  assert.throws(() => store.dispose(), /^Error: b failed$/);
  assert.deepEqual(log, ['a', 'b', 'c', 'd']);
});

test('what is added after dispose() is disposed at once', () => {
  const log: string[] = [];
  const store = new DisposableStore();
  store.dispose();
  store.add(tracked(log, 'late'));
  assert.deepEqual(log, ['late']);
});
