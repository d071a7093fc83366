// Which documents get the Gemma code actions: `gemmaTune.codeActions.languages`, a list of VS Code
// language ids, where "*" (the default) means every file and untitled document. Pure: no vscode.

export const LANGUAGES_KEY = 'codeActions.languages';

/** A document filter as VS Code's DocumentSelector takes it. */
export type Filter = { language?: string; scheme?: string };

/** The document selector for a languages setting; bad entries are skipped and reported. */
export function languageSelector(value: unknown): { selector: Filter[]; problems: string[] } {
  const problems: string[] = [];
  let ids: string[];
  if (value === undefined || value === null) ids = ['*'];
  else if (!Array.isArray(value)) {
    problems.push('gemmaTune.codeActions.languages must be a list of language ids; using ["*"]');
    ids = ['*'];
  } else {
    ids = [];
    for (const v of value) {
      if (typeof v === 'string' && /^[\w.+#-]+$|^\*$/.test(v.trim())) ids.push(v.trim());
      else problems.push(`gemmaTune.codeActions.languages: ${JSON.stringify(v)} is not a language id; skipped`);
    }
  }
  // Saved files and untitled ones; not output channels, diff views of git history and the like.
  const schemes = ['file', 'untitled'];
  if (ids.includes('*')) return { selector: schemes.map((scheme) => ({ scheme })), problems };
  return { selector: [...new Set(ids)].flatMap((language) => schemes.map((scheme) => ({ language, scheme }))), problems };
}
