// The one owner of a class's disposables (listeners, watchers, emitters, providers): add them as they
// are made, dispose them all once. Structural, so it holds vscode.Disposable and anything else with a
// dispose(); no vscode import, so it runs in unit tests.

/** Anything that can be disposed: a vscode.Disposable, an EventEmitter, a watcher. */
export interface Disposable {
  dispose(): unknown;
}

/** Disposes what it holds in the order it was added, once; what is added after that is disposed at once. */
export class DisposableStore implements Disposable {
  private items: Disposable[] = [];
  private disposed = false;

  /** Holds `d` until dispose(), and returns it, so a field can be made and registered in one line. */
  add<T extends Disposable>(d: T): T {
    if (this.disposed) d.dispose();
    else this.items.push(d);
    return d;
  }

  /** Holds each of `ds`. */
  addAll(...ds: Disposable[]): void {
    for (const d of ds) this.add(d);
  }

  /** Disposes everything held; one that throws does not keep the others alive (the first error is rethrown after). */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    const items = this.items;
    this.items = [];
    let failure: { error: unknown } | undefined;
    for (const d of items) {
      try {
        d.dispose();
      } catch (error) {
        failure ??= { error };
      }
    }
    if (failure) throw failure.error;
  }
}
