// metrics.jsonl's records, written and read here only (the job's train.py writes the same lines; see its
// Records class). A record is one line, its own versioned type (not the panel's message, so the file
// does not change when the panel's protocol does):
//
//   {"version":2,"type":"start","step":0,"totalSteps":12,"epoch":0}
//   {"version":2,"type":"step","step":1,"epoch":0.25,"loss":2.31,"etaSeconds":40.2}
//   {"version":2,"type":"eval","step":4,"valLoss":2.05,"bestStep":4}
//   {"version":2,"type":"done","step":12,"bestStep":8,"comparison":[],"message":"…"}   (also "cancelled", "failed")
//
// Files written before version 2 hold the panel's training event with its `kind` repeated as `type` and
// no `version` ({"type":"step","kind":"step",…}); they are read as the version 2 record of the same fields.
// protocol/trainingRecords.ts turns the panel's training events into records and back. Pure: no vscode.

import { arr, CheckError, type Infer, num, obj, oneOf, optional, type Schema, str } from '../common/check';
import { describeValue } from '../common/quote';

/** The format written now. */
export const METRICS_VERSION = 2;

const version = oneOf(METRICS_VERSION);
const step = num({ int: true, min: 0 });
/** A before/after row of a held-out example (bounded as the panel bounds them). */
const comparisonRow = obj({
  id: str({ min: 1, max: 64 }), input: str({ max: 100_000 }), expected: str({ max: 20_000 }), before: str({ max: 20_000 }), after: str({ max: 20_000 }),
});
/** How a run ended: done, cancelled or failed, with what the panel showed. */
const end = <T extends string>(type: T) => obj({
  version, type: oneOf(type), step: optional(step), bestStep: optional(step), comparison: optional(arr(comparisonRow, { max: 10_000 })), message: optional(str({ max: 2_000 })),
});

const recordTypes = {
  start: obj({ version, type: oneOf('start'), step, totalSteps: step, epoch: num({ min: 0 }) }),
  step: obj({ version, type: oneOf('step'), step, epoch: num({ min: 0 }), loss: num(), etaSeconds: optional(num({ min: 0 })) }),
  eval: obj({ version, type: oneOf('eval'), step, valLoss: num(), bestStep: optional(step) }),
  done: end('done'),
  cancelled: end('cancelled'),
  failed: end('failed'),
} as const;
type RecordTypes = typeof recordTypes;

/** One line of metrics.jsonl. */
export type MetricRecord = { [K in keyof RecordTypes]: Infer<RecordTypes[K]> }[keyof RecordTypes];

/** Checks one parsed line, reading a line of the format before version 2 as its version 2 record; throws CheckError naming the bad field. */
export const parseMetricRecord: Schema<MetricRecord> = (value, path = '') => {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new CheckError(path, 'expected a JSON object');
  let line = value as Record<string, unknown>;
  if (line.version === undefined && 'kind' in line) {
    const { kind, ...rest } = line;
    if (kind !== rest.type) throw new CheckError(path ? `${path}.type` : 'type', `${describeValue(rest.type)} differs from kind ${describeValue(kind)}`);
    line = { version: METRICS_VERSION, ...rest };
  }
  const type = line.type;
  if (typeof type !== 'string' || !Object.prototype.hasOwnProperty.call(recordTypes, type)) {
    throw new CheckError(path ? `${path}.type` : 'type', `expected one of ${Object.keys(recordTypes).join(', ')}, got ${describeValue(type)}`);
  }
  return recordTypes[type as keyof RecordTypes](line, path) as MetricRecord;
};
