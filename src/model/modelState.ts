// The model's life as the user sees it, and how the status bar says it. Every state is spelled out
// in words (text and tooltip), never by colour alone, so it reads the same in any theme and to a
// screen reader. Pure: no vscode (the status bar item applies the view).

/** What the engine's model is doing now. */
export type ModelState =
  /** Not checked yet (just activated). */
  | { kind: 'unknown' }
  /** No model: nothing configured and the default model is not downloaded. */
  | { kind: 'not-downloaded'; sizeMB: number }
  /** The configured model path does not exist, or (`problem`) cannot be a model. */
  | { kind: 'missing'; path: string; problem?: string }
  /** The default model is downloading; `fraction` is unknown until the server says the size. */
  | { kind: 'downloading'; fraction?: number }
  /** A model is on disk and will load on first use. */
  | { kind: 'available'; name: string }
  | { kind: 'loading'; name: string }
  | { kind: 'ready'; name: string; precision: string; loadSeconds: number }
  /** Loading failed; `message` is the engine's reason. */
  | { kind: 'error'; name: string; message: string }
  /** The engine process died (`message` says how); it starts again on the next request. */
  | { kind: 'engine-crashed'; message: string }
  /** It crashed too often in a short time: nothing runs until the user restarts it. */
  | { kind: 'engine-stopped'; message: string };

/** What the status bar item shows; `action` picks the command a click runs. */
export interface StatusView {
  text: string;
  tooltip: string;
  action: 'download' | 'status' | 'useLocal' | 'restart';
  /** Accessibility label (what a screen reader says). */
  ariaLabel: string;
}

/** Whole percent, clamped to 0–100. */
export function percent(fraction: number): number {
  return Math.max(0, Math.min(100, Math.floor(fraction * 100)));
}

/** The status bar view of a state. */
export function statusView(state: ModelState): StatusView {
  const view = (text: string, tooltip: string, action: StatusView['action'], words: string): StatusView => ({ text, tooltip, action, ariaLabel: `Gemma: ${words}` });
  switch (state.kind) {
    case 'unknown':
      return view('$(sparkle) Gemma', 'Gemma Tune: checking for a model…', 'status', 'checking for a model');
    case 'not-downloaded':
      return view('$(cloud-download) Gemma: no model', `Gemma Tune: no model yet. Click to download the default model (${state.sizeMB} MB).`, 'download', 'no model, click to download');
    case 'missing':
      return view('$(warning) Gemma: model not found', `Gemma Tune: the model ${state.path} ${state.problem ?? 'does not exist'}. Click to pick another one (setting gemmaTune.model.path).`, 'useLocal', 'model not found');
    case 'downloading': {
      const pct = state.fraction === undefined ? undefined : percent(state.fraction);
      const amount = pct === undefined ? '' : ` ${pct}%`;
      return view(`$(sync~spin) Gemma: downloading${amount}`, `Gemma Tune: downloading the default model${amount}`, 'status', `downloading the model${amount}`);
    }
    case 'available':
      return view(`$(sparkle) Gemma: ${state.name}`, `Gemma Tune: ${state.name}, loads on first use. Click for the engine status.`, 'status', `${state.name}, not loaded yet`);
    case 'loading':
      return view(`$(sync~spin) Gemma: loading`, `Gemma Tune: loading ${state.name}…`, 'status', `loading ${state.name}`);
    case 'ready':
      return view(
        `$(check) Gemma: ${state.name}`,
        `Gemma Tune: ${state.name} ready (${state.precision}, loaded in ${state.loadSeconds.toFixed(1)} s). Click for the engine status.`,
        'status',
        `${state.name} ready`,
      );
    case 'error':
      return view('$(error) Gemma: model failed', `Gemma Tune: ${state.name} could not be loaded: ${state.message}. Click to pick another model.`, 'useLocal', 'the model failed to load');
    case 'engine-crashed':
      return view(
        '$(warning) Gemma: engine crashed',
        `Gemma Tune: ${state.message}. It starts again on the next request; your tasks, examples and adapters are unchanged. Click for the engine status.`,
        'status',
        'the engine crashed and starts again on the next request',
      );
    case 'engine-stopped':
      return view('$(error) Gemma: engine stopped', `Gemma Tune: ${state.message}. Click to restart the engine.`, 'restart', 'the engine stopped after crashing, click to restart it');
  }
}
