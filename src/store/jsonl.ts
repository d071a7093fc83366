// JSON Lines files that survive damage: every line is parsed on its own, a bad line becomes a
// problem naming the file and line number, and the good lines are kept. Pure Node: no vscode.

import { promises as fs } from 'node:fs';
import { errorMessageOf } from '../protocol/quote';

/** One line that could not be used, with where it is and why. */
export interface LineProblem {
  file: string;
  /** 1-based line number. */
  line: number;
  message: string;
}

/** The readable records of a JSONL file and the lines that were not. */
export interface JsonlRead<T> {
  records: { value: T; line: number }[];
  problems: LineProblem[];
}

/** Files larger than this are refused rather than read into memory. */
export const MAX_JSONL_BYTES = 64 * 1024 * 1024;

/** Formats a problem as "file:line: message" (the form editors turn into a link). */
export function formatProblem(p: LineProblem): string {
  return `${p.file}:${p.line}: ${p.message}`;
}

/**
 * Reads `file` line by line; `parse` checks one parsed JSON value and throws to reject it.
 * A missing file reads as empty; blank lines are skipped.
 */
export async function readJsonl<T>(file: string, parse: (value: unknown) => T, maxBytes = MAX_JSONL_BYTES): Promise<JsonlRead<T>> {
  let text: string;
  try {
    const stat = await fs.stat(file);
    if (stat.size > maxBytes) {
      throw new Error(`${file}: ${stat.size} bytes is more than the ${maxBytes} this reader accepts`);
    }
    text = await fs.readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { records: [], problems: [] };
    throw err;
  }
  return parseJsonl(text, file, parse);
}

/** The pure part of readJsonl: splits and parses `text` that came from `file`. */
export function parseJsonl<T>(text: string, file: string, parse: (value: unknown) => T): JsonlRead<T> {
  const out: JsonlRead<T> = { records: [], problems: [] };
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const raw = lines[i].replace(/\r$/, '');
    if (raw.trim() === '') continue;
    let json: unknown;
    try {
      json = JSON.parse(raw);
    } catch (err) {
      out.problems.push({ file, line: i + 1, message: `not valid JSON (${errorMessageOf(err)})` });
      continue;
    }
    try {
      out.records.push({ value: parse(json), line: i + 1 });
    } catch (err) {
      out.problems.push({ file, line: i + 1, message: (err as Error).message });
    }
  }
  return out;
}

/** One JSON value per line, with a trailing newline (empty string for no values). */
export function toJsonl(values: readonly unknown[]): string {
  return values.map((v) => JSON.stringify(v) + '\n').join('');
}
