// Where the training panel opens: beside the editor the command came from, in a column that is
// already there (the one to its right, else the one to its left) before a new one. Opening "beside"
// an editor in the right-most column would otherwise add a third column and squeeze every column,
// the panel to ~300 px. Pure: the caller maps the answer to a vscode.ViewColumn.

/** The column (1-based) for the panel, or 'new' for a new column to the right of `active`. */
export function panelColumn(active: number | undefined, columns: number): number | 'new' {
  if (active === undefined || columns <= 1) return 'new';
  if (active < columns) return active + 1;
  return active - 1;
}
