// metrics.jsonl's records, written and read here only (the job's train.py writes the same lines; see its
// Records class). A record is one training-panel event (protocol/webview.ts TrainingEvent) with its `kind`
// repeated as `type`, and no other keys:
//
//   {"type":"start","kind":"start","totalSteps":12,"step":0,"epoch":0}
//   {"type":"step","kind":"step","step":1,"epoch":0.25,"loss":2.31,"etaSeconds":40.2}
//   {"type":"eval","kind":"eval","step":4,"valLoss":2.05,"bestStep":4}
//   {"type":"done","kind":"done","step":12,"bestStep":8,"comparison":[],"message":"…"}
//
// Folding the records with applyTrainingEvent gives the chart the panel draws. Pure: no vscode.

import { applyTrainingEvent, parseHostMessage, type TrainingEvent, type TrainingView } from '../protocol/webview';
import { CheckError } from '../protocol/check';
import type { MetricRecord } from './taskStore';

/** The metrics.jsonl record of one training event. */
export function metricRecord(event: TrainingEvent): MetricRecord {
  return { type: event.kind, ...event };
}

/** The training event a record holds; throws CheckError naming the bad field. */
export function trainingEventOf(record: MetricRecord): TrainingEvent {
  const { type, ...event } = record;
  if (type !== event.kind) throw new CheckError('type', `"${type}" differs from kind ${JSON.stringify(event.kind)}`);
  const msg = parseHostMessage({ type: 'training', event });
  if (msg.type !== 'training') throw new CheckError('', 'not a training event');
  return msg.event;
}

/** The last run as its records describe it; records another version wrote, which do not check, are skipped. */
export function trainingViewOf(records: readonly MetricRecord[]): TrainingView | null {
  let view: TrainingView | null = null;
  for (const r of records) {
    try {
      view = applyTrainingEvent(view, trainingEventOf(r));
    } catch {
      // a line written by another version: skipped, the rest still draws
    }
  }
  return view;
}
