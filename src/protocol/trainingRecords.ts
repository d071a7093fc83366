// The panel's training events as metrics.jsonl's records (store/metricsLog.ts) and back: what a run
// appends while it trains, and the chart a reopened panel draws from the file. Here rather than in the
// store, so that the store's record format never depends on the panel's protocol. Pure: no vscode.

import { type MetricRecord, METRICS_VERSION, parseMetricRecord } from '../store/metricsLog';
import { applyTrainingEvent, type TrainingEvent, type TrainingView } from './webview';

/** The metrics.jsonl record of one of the panel's training events; throws CheckError when the event lacks a field its record needs. */
export function metricRecord(event: TrainingEvent): MetricRecord {
  const { kind, ...fields } = event;
  return parseMetricRecord({ version: METRICS_VERSION, type: kind, ...fields });
}

/** The panel's training event a record describes. */
export function eventOfRecord(record: MetricRecord): TrainingEvent {
  const { version: _version, type, ...fields } = record;
  return { kind: type, ...fields };
}

/** The last run as the lines of metrics.jsonl describe it; lines that do not check (another version's, damaged) are skipped. */
export function trainingViewOf(lines: readonly unknown[]): TrainingView | null {
  let view: TrainingView | null = null;
  for (const line of lines) {
    try {
      view = applyTrainingEvent(view, eventOfRecord(parseMetricRecord(line)));
    } catch {
      // a line written by another version: skipped, the rest still draws
    }
  }
  return view;
}
