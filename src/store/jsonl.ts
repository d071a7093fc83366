// JSON Lines files that survive damage: every line is parsed on its own, a bad line becomes a
// problem naming the file and line number, and the good lines are kept. Pure Node: no vscode.

import { errorText } from '../common/quote';
import { type FileStamp, readGuarded } from './safeFile';

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

/** A JSONL file as read: its records and problems, the bytes they came from, and the file's stamp (null: no file). */
export interface JsonlFile<T> extends JsonlRead<T> {
  bytes: Buffer;
  stamp: FileStamp | null;
}

/**
 * Reads `file` line by line; `parse` checks one parsed JSON value and throws to reject it.
 * A missing file reads as empty; blank lines are skipped. Only a regular file of at most maxBytes is
 * read (safeFile.ts): a link, pipe or device in its place is refused without reading it.
 */
export async function readJsonl<T>(file: string, parse: (value: unknown) => T, maxBytes = MAX_JSONL_BYTES): Promise<JsonlFile<T>> {
  let read;
  try {
    read = await readGuarded(file, maxBytes);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { records: [], problems: [], bytes: Buffer.alloc(0), stamp: null };
    throw err;
  }
  return { ...parseJsonl(read.bytes.toString('utf8'), file, parse), bytes: read.bytes, stamp: read.stamp };
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
      out.problems.push({ file, line: i + 1, message: `not valid JSON (${errorText(err)})` });
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
