// The panel's edits as the page holds them, without the DOM (unit-tested on its own): the values the
// user typed or picked that the host has not confirmed yet, laid over the host's data; the sequence
// number of each example's latest send, so that an older ack does not clear a newer edit; and what
// the page derives from the merged examples after every edit: the header's counts (whether Train can
// run is trainReadiness.ts's, shared with the host) and what the line under an expected output says
// about the model's answer.

import { type ExampleCounts, hasLabel } from '../src/panel/trainReadiness';
import { plural } from '../src/plural';
import type { ExampleView, Suggestion } from '../src/protocol/webview';
import { sameAnswer } from './format';

/** The fields of an example the user edits. */
export type ExamplePatch = Partial<Pick<ExampleView, 'input' | 'output' | 'heldOut'>>;

/** Unconfirmed edits per example, and the seq of each example's latest send. */
export class EditBuffer {
  private readonly local = new Map<string, ExamplePatch>();
  private readonly lastSeq = new Map<string, number>();

  /** Starts with the edits a torn-down page saved (sent again by the caller). */
  constructor(saved: Record<string, ExamplePatch> = {}) {
    for (const [id, patch] of Object.entries(saved)) this.local.set(id, { ...patch });
  }

  /** Records an edit on top of the example's earlier unconfirmed ones. */
  edit(id: string, patch: ExamplePatch): void {
    this.local.set(id, { ...this.local.get(id), ...patch });
  }

  /** The unconfirmed fields of one example (what the next send carries). */
  pending(id: string): ExamplePatch | undefined {
    return this.local.get(id);
  }

  /** Notes that the example's pending fields went out with `seq`. */
  sent(id: string, seq: number): void {
    this.lastSeq.set(id, seq);
  }

  /** The host saved the edit sent as `seq`: true (and the example's edits cleared) when it was the latest one. */
  confirmed(seq: number, id: string): boolean {
    if (this.lastSeq.get(id) !== seq) return false;
    this.local.delete(id);
    this.lastSeq.delete(id);
    return true;
  }

  /** Forgets an example's edits (it was removed). */
  drop(id: string): void {
    this.local.delete(id);
    this.lastSeq.delete(id);
  }

  /** Ids with unconfirmed edits. */
  ids(): string[] {
    return [...this.local.keys()];
  }

  /** The examples as the user sees them: the host's values with the unconfirmed edits laid over. */
  merge(examples: readonly ExampleView[]): ExampleView[] {
    return examples.map((e) => {
      const patch = this.local.get(e.id);
      return patch ? { ...e, ...patch } : e;
    });
  }

  /** What setState keeps (so a page torn down mid-edit resends it). */
  snapshot(): Record<string, ExamplePatch> {
    return Object.fromEntries(this.local);
  }
}

/** The header's summary: "11 examples, 3 labeled, 2 held out". */
export function countsText(c: ExampleCounts): string {
  return `${plural(c.total, 'example')}, ${c.labeled} labeled, ${c.heldOut} held out`;
}

/** What the line under an expected output shows about the model's answer. */
export type SuggestionStatus = 'none' | 'waiting' | 'open' | 'agrees' | 'differs';

/** open: unlabeled, the model's answer can be accepted; agrees / differs: compared with the label. */
export function suggestionStatus(e: Pick<ExampleView, 'output'>, s: Suggestion | undefined, waiting: boolean): SuggestionStatus {
  if (!s) return waiting ? 'waiting' : 'none';
  if (!hasLabel(e)) return 'open';
  return sameAnswer(s.output, e.output) ? 'agrees' : 'differs';
}
