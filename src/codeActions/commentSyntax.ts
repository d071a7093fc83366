// How a language writes a comment, to insert a classification as one. VS Code has no API for a
// language's comment tokens, but every language extension ships them in its
// language-configuration.json (`comments.lineComment` / `comments.blockComment`), which the host
// side reads (languageComments.ts); the table below covers common languages when that fails.
// Pure: no vscode.

// The ESM build: the package's UMD main loads its parts with a require() esbuild cannot follow.
import { parse, type ParseError } from 'jsonc-parser/lib/esm/main.js';

/** A language's comment tokens; either may be missing. */
export interface CommentSyntax {
  line?: string;
  block?: readonly [string, string];
}

const C_LIKE: CommentSyntax = { line: '//', block: ['/*', '*/'] };
const HASH: CommentSyntax = { line: '#' };
const XML: CommentSyntax = { block: ['<!--', '-->'] };

/** Comment tokens of common languages, by VS Code language id. */
export const KNOWN_COMMENTS: Readonly<Record<string, CommentSyntax>> = {
  c: C_LIKE, cpp: C_LIKE, csharp: C_LIKE, java: C_LIKE, javascript: C_LIKE, javascriptreact: C_LIKE,
  typescript: C_LIKE, typescriptreact: C_LIKE, go: C_LIKE, rust: C_LIKE, swift: C_LIKE, kotlin: C_LIKE,
  scala: C_LIKE, dart: C_LIKE, php: C_LIKE, jsonc: C_LIKE, 'objective-c': C_LIKE, groovy: C_LIKE,
  python: HASH, shellscript: HASH, ruby: HASH, perl: HASH, r: HASH, yaml: HASH, dockerfile: HASH,
  makefile: HASH, powershell: { line: '#', block: ['<#', '#>'] }, toml: HASH, coffeescript: HASH, julia: HASH, elixir: HASH,
  sql: { line: '--', block: ['/*', '*/'] }, lua: { line: '--', block: ['--[[', ']]'] }, haskell: { line: '--', block: ['{-', '-}'] },
  css: { block: ['/*', '*/'] }, scss: C_LIKE, less: C_LIKE,
  html: XML, xml: XML, markdown: XML, vue: XML, svelte: XML,
  bat: { line: 'REM' }, ini: { line: ';' }, clojure: { line: ';' }, lisp: { line: ';' },
  latex: { line: '%' }, tex: { line: '%' }, matlab: { line: '%' }, erlang: { line: '%' },
  vb: { line: "'" }, fsharp: { line: '//', block: ['(*', '*)'] }, ocaml: { block: ['(*', '*)'] },
};

function isToken(v: unknown): v is string {
  return typeof v === 'string' && v.trim() !== '' && v.length <= 16 && !/[\r\n]/.test(v);
}

/**
 * The comment tokens declared in a language-configuration.json text (JSON with comments and
 * trailing commas); undefined when the file declares none or cannot be read as such.
 */
export function parseLanguageConfiguration(text: string): CommentSyntax | undefined {
  const errors: ParseError[] = [];
  const json: unknown = parse(text, errors, { allowTrailingComma: true, disallowComments: false });
  if (errors.length > 0 || typeof json !== 'object' || json === null) return undefined;
  const comments = (json as { comments?: unknown }).comments;
  if (typeof comments !== 'object' || comments === null) return undefined;
  const { lineComment, blockComment } = comments as { lineComment?: unknown; blockComment?: unknown };
  const out: CommentSyntax = {};
  // Newer configurations may write lineComment as { comment: "//", noIndent: … }.
  const line = typeof lineComment === 'object' && lineComment !== null ? (lineComment as { comment?: unknown }).comment : lineComment;
  if (isToken(line)) out.line = line;
  if (Array.isArray(blockComment) && blockComment.length === 2 && isToken(blockComment[0]) && isToken(blockComment[1])) {
    out.block = [blockComment[0], blockComment[1]];
  }
  return out.line || out.block ? out : undefined;
}

/** `text` as one comment line (line comment preferred, else block); plain text when `syntax` is undefined. */
export function asComment(text: string, syntax: CommentSyntax | undefined): string {
  // A comment must stay one line: a label with a newline (or a closing token) would leak into code.
  let body = text.replace(/[\r\n]+/g, ' ').trim();
  if (syntax?.line) return `${syntax.line} ${body}`;
  if (syntax?.block) {
    const [open, close] = syntax.block;
    body = body.split(close).join(close.split('').join(' '));
    return `${open} ${body} ${close}`;
  }
  return body;
}
