// A document language's comment tokens, read from the language-configuration.json that the
// language's extension contributes (the source VS Code itself uses for "Toggle Line Comment"),
// falling back to commentSyntax.ts's table. Read once per language.

import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import * as vscode from 'vscode';
import { type CommentSyntax, KNOWN_COMMENTS, parseLanguageConfiguration } from './commentSyntax';

const cache = new Map<string, Promise<CommentSyntax | undefined>>();

/** The comment tokens of `languageId`, or undefined when neither the extensions nor the table know any. */
export function commentSyntaxOf(languageId: string): Promise<CommentSyntax | undefined> {
  let hit = cache.get(languageId);
  if (!hit) {
    hit = fromExtensions(languageId).then((found) => found ?? KNOWN_COMMENTS[languageId]);
    cache.set(languageId, hit);
  }
  return hit;
}

interface LanguageContribution {
  id?: unknown;
  configuration?: unknown;
}

async function fromExtensions(languageId: string): Promise<CommentSyntax | undefined> {
  for (const ext of vscode.extensions.all) {
    const languages = (ext.packageJSON as { contributes?: { languages?: unknown } } | undefined)?.contributes?.languages;
    if (!Array.isArray(languages)) continue;
    for (const lang of languages as LanguageContribution[]) {
      if (lang?.id !== languageId || typeof lang.configuration !== 'string') continue;
      const file = path.join(ext.extensionPath, lang.configuration);
      try {
        const found = parseLanguageConfiguration(await fs.readFile(file, 'utf8'));
        if (found) return found;
      } catch {
        // An unreadable file: try the next extension, then the table.
      }
    }
  }
  return undefined;
}
