// The training panel's HTML, from one function: a strict Content Security Policy (nothing but
// our nonce'd bundle runs; styles and fonts only from the extension's own files), the bundled
// script and styles, and an empty root the script fills. No vscode import: URIs come in as
// strings, so this is testable on its own.

import { randomBytes } from 'node:crypto';

export interface PanelHtmlInput {
  /** webview.cspSource */
  cspSource: string;
  /** webview.asWebviewUri(dist/webview.js) */
  scriptUri: string;
  /** webview.asWebviewUri of each stylesheet (dist/webview.css, media/panel.css) */
  styleUris: string[];
  title: string;
  nonce?: string;
}

/** A fresh nonce for one rendering of the page. */
export function makeNonce(): string {
  return randomBytes(18).toString('base64').replace(/[+/=]/g, '');
}

function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** The complete HTML document of the panel. */
export function panelHtml(input: PanelHtmlInput): string {
  const nonce = input.nonce ?? makeNonce();
  // lit (used by @vscode-elements) styles its components with constructable stylesheets, which
  // CSP does not govern, so style-src needs no 'unsafe-inline'.
  const csp = [
    "default-src 'none'",
    `script-src 'nonce-${nonce}'`,
    `style-src ${input.cspSource}`,
    `font-src ${input.cspSource}`,
    `img-src ${input.cspSource} data:`,
  ].join('; ');
  const styles = input.styleUris.map((u) => `<link rel="stylesheet" href="${escapeHtml(u)}">`).join('\n    ');
  return `<!DOCTYPE html>
<html lang="en">
  <head>
    <meta charset="UTF-8">
    <meta http-equiv="Content-Security-Policy" content="${csp}">
    <meta name="viewport" content="width=device-width, initial-scale=1.0">
    ${styles}
    <title>${escapeHtml(input.title)}</title>
  </head>
  <body>
    <main id="app" aria-busy="true"></main>
    <script nonce="${nonce}" src="${escapeHtml(input.scriptUri)}"></script>
  </body>
</html>`;
}
