// A cache of folders built once and kept between runs: the engine keeps each model's converted weights
// and built graphs here, so a model loaded before skips the conversion (gemma/runtimeCache.ts).
//
//   <root>/<key>/…            the files `fill` wrote
//   <root>/<key>/entry.json   { format, key, each file's size, the caller's meta }, written last
//
// An entry is built in a hidden temporary folder beside it, flushed to the disk, and renamed into place:
// a reader sees a whole entry or none, and a crash, a kill or a full disk leaves only the temporary folder,
// which the next build removes once its process has gone. Two processes building the same key both
// finish; the second rename fails on the existing folder and that process uses the first one's entry.
// An entry whose files are missing or have other sizes than recorded is removed, so the caller rebuilds
// it. After each build the least recently opened entries beyond `maxEntries` are removed: a process
// that has them open keeps its descriptors and mappings, and on Windows, where an open file cannot be
// deleted, the removal is simply tried again after the next build.

import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { isTempName, TEMP_SUFFIX } from '../../common/atomicWrite';
import { processAlive } from '../../common/processAlive';

const ENTRY_FILE = 'entry.json';
const FORMAT = 1;
/** entry.json is small; anything larger is not ours. */
const ENTRY_MAX_BYTES = 1 << 20;
/** A temporary folder this old is removed even if a process of its id runs (the id was reused). */
const STALE_TEMP_MS = 24 * 3600 * 1000;

/** One entry of the cache. */
export interface CacheEntry {
  /** The record `fill` returned when the entry was built (the caller validates it). */
  readonly meta: unknown;
  /** The path of a file of the entry. */
  file(name: string): string;
}

interface EntryRecord {
  format: number;
  key: string;
  files: Record<string, number>;
  meta: unknown;
}

const KEY = /^[0-9a-f]{16,128}$/;

/** Keyed folders under `root`, each built whole or not at all. */
export class FolderCache {
  constructor(readonly root: string, private readonly maxEntries = 3) {}

  /** The entry for `key`, or null when there is none or it is damaged (then it is removed). */
  open(key: string): CacheEntry | null {
    checkKey(key);
    const dir = path.join(this.root, key);
    let record: EntryRecord;
    try {
      record = readRecord(dir, key);
    } catch {
      // Entries appear only whole (by rename): a folder without a good record is damaged.
      if (fs.existsSync(dir)) this.remove(key);
      return null;
    }
    try {
      // Marks it recently used for eviction.
      const now = new Date();
      fs.utimesSync(path.join(dir, ENTRY_FILE), now, now);
    } catch {
      // a read-only cache still serves
    }
    return entryAt(dir, record.meta);
  }

  /**
   * Builds the entry for `key`: `fill` writes its files into the (empty) folder it is given and returns
   * a JSON-serialisable record kept with them. Throws what `fill` or the disk threw; nothing is left behind.
   * Files in subfolders are not recorded or checked.
   */
  async build(key: string, fill: (dir: string) => Promise<unknown>): Promise<CacheEntry> {
    checkKey(key);
    fs.mkdirSync(this.root, { recursive: true });
    this.removeLeftovers();
    const temp = path.join(this.root, `.${key}.${process.pid}.${randomBytes(4).toString('hex')}${TEMP_SUFFIX}`);
    fs.mkdirSync(temp);
    const dir = path.join(this.root, key);
    try {
      const meta = await fill(temp);
      const files: Record<string, number> = {};
      for (const name of fs.readdirSync(temp)) {
        const st = fs.statSync(path.join(temp, name));
        if (!st.isFile()) continue;
        files[name] = st.size;
        syncFile(path.join(temp, name));
      }
      const record: EntryRecord = { format: FORMAT, key, files, meta };
      fs.writeFileSync(path.join(temp, ENTRY_FILE), JSON.stringify(record));
      syncFile(path.join(temp, ENTRY_FILE));
      try {
        fs.renameSync(temp, dir);
      } catch (e) {
        // Another process put the same entry in place first: use it.
        const existing = fs.existsSync(dir) ? this.open(key) : null;
        if (!existing) throw e;
        fs.rmSync(temp, { recursive: true, force: true });
        return existing;
      }
      syncFile(this.root);
      this.evict(key);
      return entryAt(dir, meta);
    } catch (e) {
      fs.rmSync(temp, { recursive: true, force: true });
      throw e;
    }
  }

  /** Removes the entry for `key` (a no-op when there is none). */
  remove(key: string): void {
    checkKey(key);
    tryRemove(path.join(this.root, key));
  }

  /** The keys of the entries present, most recently used first. */
  keys(): string[] {
    let names: string[];
    try {
      names = fs.readdirSync(this.root);
    } catch {
      return [];
    }
    const used = new Map<string, number>();
    for (const name of names) {
      if (!KEY.test(name)) continue;
      try {
        used.set(name, fs.statSync(path.join(this.root, name, ENTRY_FILE)).mtimeMs);
      } catch {
        used.set(name, 0); // no record: oldest, removed first
      }
    }
    return [...used.keys()].sort((a, b) => used.get(b)! - used.get(a)!);
  }

  private evict(keep: string): void {
    const others = this.keys().filter((k) => k !== keep);
    for (const k of others.slice(Math.max(0, this.maxEntries - 1))) tryRemove(path.join(this.root, k));
  }

  /** Temporary folders of builds whose process has gone (a crash, a kill, a full disk). */
  private removeLeftovers(): void {
    for (const name of fs.readdirSync(this.root)) {
      if (!name.startsWith('.') || !isTempName(name)) continue;
      const pid = Number(name.split('.')[2]);
      const full = path.join(this.root, name);
      let age: number;
      try {
        age = Date.now() - fs.statSync(full).mtimeMs;
      } catch {
        continue;
      }
      if (!processAlive(pid) || age > STALE_TEMP_MS) tryRemove(full);
    }
  }
}

function checkKey(key: string): void {
  if (!KEY.test(key)) throw new Error(`cache key ${JSON.stringify(key)} is not 16–128 hex digits`);
}

function entryAt(dir: string, meta: unknown): CacheEntry {
  return { meta, file: (name) => path.join(dir, name) };
}

/** The entry's record, checked against the files beside it; throws when anything is off. */
function readRecord(dir: string, key: string): EntryRecord {
  const file = path.join(dir, ENTRY_FILE);
  const size = fs.statSync(file).size;
  if (size > ENTRY_MAX_BYTES) throw new Error(`${file}: ${size} bytes`);
  const r = JSON.parse(fs.readFileSync(file, 'utf8')) as Partial<EntryRecord> | null;
  if (!r || typeof r !== 'object' || r.format !== FORMAT || r.key !== key || !r.files || typeof r.files !== 'object') {
    throw new Error(`${file}: not a cache record of this format`);
  }
  for (const [name, bytes] of Object.entries(r.files)) {
    if (name.includes('/') || name.includes('\\') || name === ENTRY_FILE || !Number.isSafeInteger(bytes)) throw new Error(`${file}: bad file entry ${name}`);
    const actual = fs.statSync(path.join(dir, name)).size;
    if (actual !== bytes) throw new Error(`${path.join(dir, name)}: ${actual} bytes, ${bytes} recorded`);
  }
  return r as EntryRecord;
}

/** Flushes a file (or, where the system allows, a folder) to the disk. */
function syncFile(p: string): void {
  let fd: number;
  try {
    fd = fs.openSync(p, 'r');
  } catch {
    return; // Windows cannot open a folder; its renames are journaled by NTFS
  }
  try {
    fs.fsyncSync(fd);
  } catch {
    // some file systems refuse fsync on a folder
  } finally {
    fs.closeSync(fd);
  }
}

function tryRemove(p: string): void {
  try {
    fs.rmSync(p, { recursive: true, force: true });
  } catch {
    // in use (Windows) or already gone: the next build tries again
  }
}
