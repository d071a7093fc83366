// The page's side of the host connection: typed postMessage, and the state VS Code keeps for a
// hidden panel (getState/setState). Saved state is untrusted on the way back in, like messages.

import type { PanelState, WebviewToHost } from '../src/protocol/webview';
import { parsePanelState } from '../src/protocol/webview';

interface VsCodeApi {
  postMessage(message: unknown): void;
  getState(): unknown;
  setState(state: unknown): void;
}

declare function acquireVsCodeApi(): VsCodeApi;

/** UI details that are not in the store: where the user was. */
export interface UiState {
  focus?: { id: string; col: string };
  scrollY?: number;
  advancedOpen?: boolean;
}

/** What setState keeps: the UI, the last data (to draw at once on restore), and the restore key. */
export interface SavedState {
  ui: UiState;
  data?: PanelState;
  /** Edits not yet confirmed by the host, resent when the page comes back. */
  pending?: Record<string, { input?: string; output?: string; heldOut?: boolean }>;
  restore?: { folder: string; taskId: string };
}

const api = acquireVsCodeApi();

/** Sends a message to the extension host. */
export function send(msg: WebviewToHost): void {
  api.postMessage(msg);
}

/** The saved state, with anything that does not validate dropped. */
export function loadSaved(): SavedState {
  const raw = api.getState() as Partial<SavedState> | undefined;
  const saved: SavedState = { ui: {} };
  if (!raw || typeof raw !== 'object') return saved;
  if (raw.ui && typeof raw.ui === 'object') saved.ui = raw.ui;
  try {
    if (raw.data !== undefined) saved.data = parsePanelState(raw.data);
  } catch {
    // stale or damaged: the host sends fresh data anyway
  }
  if (raw.pending && typeof raw.pending === 'object') saved.pending = raw.pending;
  if (raw.restore && typeof raw.restore.folder === 'string' && typeof raw.restore.taskId === 'string') saved.restore = raw.restore;
  return saved;
}

/** Replaces the saved state. */
export function save(state: SavedState): void {
  api.setState(state);
}
