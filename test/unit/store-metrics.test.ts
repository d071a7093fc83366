// metrics.jsonl's records (store/metricsLog.ts, protocol/trainingRecords.ts): the version 2 record each panel event becomes, checked
// when read; lines of the format before version 2 (the panel's message with `kind` as `type`) still read;
// a damaged or foreign line is named by its field and skipped when the chart is drawn.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { METRICS_VERSION, parseMetricRecord } from '../../src/store/metricsLog';
import { eventOfRecord, metricRecord, trainingViewOf } from '../../src/protocol/trainingRecords';
import type { TrainingEvent } from '../../src/protocol/webview';

const RUN: TrainingEvent[] = [
  { kind: 'start', totalSteps: 4, step: 0, epoch: 0 },
  { kind: 'step', step: 1, epoch: 0.5, loss: 2.5, etaSeconds: 3 },
  { kind: 'step', step: 2, epoch: 1, loss: 2.1, etaSeconds: 2 },
  { kind: 'eval', step: 2, valLoss: 2.2, bestStep: 2 },
  { kind: 'done', step: 2, bestStep: 2, comparison: [{ id: 'e1', input: 'a', expected: 'b', before: 'c', after: 'b' }], message: 'Trained 2 steps.' },
];

test('each panel event becomes a version 2 record and back, the same event', () => {
  const records = RUN.map(metricRecord);
  assert.deepEqual(records[1], { version: METRICS_VERSION, type: 'step', step: 1, epoch: 0.5, loss: 2.5, etaSeconds: 3 });
  assert.deepEqual(records.map(eventOfRecord), RUN);
  const view = trainingViewOf(records.map((r) => JSON.parse(JSON.stringify(r))));
  assert.deepEqual(view?.trainLoss, [[1, 2.5], [2, 2.1]]);
  assert.equal(view?.status, 'done');
  assert.equal(view?.comparison.length, 1);
  assert.deepEqual(metricRecord({ kind: 'failed', message: 'no model' }), { version: 2, type: 'failed', message: 'no model' });
});

test('lines written before version 2 read as the same records', () => {
  const legacy = RUN.map((e) => ({ type: e.kind, ...e }));
  assert.deepEqual(legacy.map((l) => parseMetricRecord(l)), RUN.map(metricRecord));
  assert.deepEqual(trainingViewOf(legacy), trainingViewOf(RUN.map(metricRecord)));
});

test('a bad line is named by its field; the chart skips it and draws the rest', () => {
  for (const [line, why] of [
    [{ type: 'step', kind: 'eval', step: 1 }, /type: "step" differs from kind "eval"/],
    [{ version: 2, type: 'step', step: 'two', epoch: 0, loss: 1 }, /step: expected an integer/],
    [{ version: 2, type: 'step', step: 1, loss: 1 }, /epoch: expected a number/],
    [{ version: 3, type: 'step', step: 1, epoch: 0, loss: 1 }, /version: expected 2/],
    [{ version: 2, type: 'tick' }, /type: expected one of start, step, eval, done, cancelled, failed/],
    [{ version: 2, type: 'eval', step: 1, valLoss: 2, extra: 1 }, /unknown field "extra"/],
    ['{}', /expected a JSON object/],
  ] as const) {
    assert.throws(() => parseMetricRecord(line), why, JSON.stringify(line));
  }
  const view = trainingViewOf([metricRecord(RUN[0]), { version: 2, type: 'step', step: 'x' }, metricRecord(RUN[1])]);
  assert.deepEqual(view?.trainLoss, [[1, 2.5]]);
  assert.throws(() => metricRecord({ kind: 'step', step: 1 }), /epoch: expected a number/, 'a step without its loss curve point is not recorded');
});
