// The state the panel's page draws, built from the task's files and what the host knows (engine,
// training, suggestions), kept within the page's limits: the first PANEL_MAX_EXAMPLES examples and
// PANEL_MAX_PROBLEMS unreadable lines, with what was left out counted so the page says so. What the
// page cannot draw at all becomes a message naming the problem and what to do. Pure: no vscode.

import * as path from 'node:path';
import { type Capabilities, PANEL_MAX_EXAMPLES, PANEL_MAX_PROBLEMS, type PanelState, parsePanelState, type Suggestion, type TrainingView } from '../protocol/webview';
import { errorText } from '../common/quote';
import type { Example } from '../store/examples';
import { formatProblem, type LineProblem } from '../store/jsonl';
import type { Task } from '../store/taskStore';

export interface PanelStateInput {
  task: Task;
  hasAdapter: boolean;
  examples: readonly Example[];
  problems: readonly LineProblem[];
  capabilities: Capabilities;
  training: TrainingView | null;
  suggestions: readonly Suggestion[];
  resumable: { step: number; totalSteps: number } | null;
}

/** What the page shows in place of the panel: the problem and what to do about it. */
export interface Unavailable {
  problem: string;
  remedy: string;
}

/** The page's state for a task, within its limits; or why the page cannot show it. */
export function buildPanelState(input: PanelStateInput): { state: PanelState } | { unavailable: Unavailable } {
  const c = input.task.config;
  const examples = input.examples.slice(0, PANEL_MAX_EXAMPLES);
  const shown = new Set(examples.map((e) => e.id));
  const omittedExamples = input.examples.length - examples.length;
  const omittedProblems = Math.max(0, input.problems.length - PANEL_MAX_PROBLEMS);
  const state: PanelState = {
    task: { id: input.task.id, name: c.name, kind: c.kind, instruction: c.instruction, labels: c.labels, fields: c.fields, hyperparameters: c.hyperparameters, hasAdapter: input.hasAdapter },
    examples: examples.map((e) => ({ id: e.id, input: e.input, output: e.output, heldOut: e.heldOut })),
    // "examples.jsonl:12: why": the task's folder is the panel's, no need to spell it out on every line.
    problems: input.problems.slice(0, PANEL_MAX_PROBLEMS).map((p) => formatProblem({ ...p, file: path.relative(input.task.dir, p.file) || p.file })),
    capabilities: input.capabilities,
    training: input.training,
    suggestions: input.suggestions.filter((s) => shown.has(s.id)),
    resumable: input.resumable,
    ...(omittedExamples > 0 || omittedProblems > 0 ? { omitted: { examples: omittedExamples, problems: omittedProblems } } : {}),
  };
  try {
    // The page checks every state it gets and draws nothing of one that fails: check here first, so the user reads why.
    return { state: parsePanelState(state) };
  } catch (err) {
    return {
      unavailable: {
        problem: `The panel cannot show the task "${c.name}": ${(err as Error).message}.`,
        remedy: `Look at the task's files in ${input.task.dir} (task.json and examples.jsonl), fix or remove what the message names, then press Try again.`,
      },
    };
  }
}

/** Why a task's files could not be read at all, and what to do; paths inside `root` (the workspace folder) are shown relative to it. */
export function unreadableTask(taskId: string, err: unknown, root?: string): Unavailable {
  const raw = errorText(err);
  const message = root ? raw.split(root + path.sep).join('') : raw;
  return {
    problem: `The task "${taskId}" cannot be read: ${message}`,
    remedy: 'Fix the file the message names (if the task is committed, git has its last good version), then press Try again. Nothing was written to it.',
  };
}
