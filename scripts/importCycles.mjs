// Lint rule `local/no-import-cycle`: imports point one way, between files and between folders, type-only
// imports included. eslint-plugin-import's no-cycle skips `import type`, yet a type cycle still ties two
// modules so that neither can move without the other, and it knows nothing of folders, where
// "store ⇄ protocol" cycles hide behind files that do not form a cycle themselves.
//
// A unit is a folder (src/store, src/engine/gemma, webview); a file directly in src/, src/engine/ or
// src/cli/ is a unit of its own (the entry points extension.ts, engine/worker.ts and cli/main.ts sit
// above the folders beside them, which may use the small helpers there). The graph is read once per
// ESLint process from the files on disk, with the linted file's own imports taken from its current text.

import * as fs from 'node:fs';
import * as path from 'node:path';
import ts from 'typescript';

const ROOTS = ['src', 'webview'];
/** Folders whose direct files are units of their own rather than one unit together. */
const LOOSE_FOLDERS = new Set(['src', 'src/engine', 'src/cli']);

/** The .ts file a relative specifier names, or undefined for a package or a missing file. */
export function resolveImport(fromFile, spec) {
  if (!spec.startsWith('.')) return undefined;
  const base = path.resolve(path.dirname(fromFile), spec);
  for (const f of [base, `${base}.ts`, base.replace(/\.js$/, '.ts'), path.join(base, 'index.ts')]) {
    if (f.endsWith('.ts') && fs.existsSync(f) && fs.statSync(f).isFile()) return f;
  }
  return undefined;
}

/** The relative specifiers a file's text imports, re-exports or loads dynamically, `import type` included. */
export function importSpecifiers(text) {
  return ts.preProcessFile(text, true, true).importedFiles.map((f) => f.fileName);
}

/** The unit a file belongs to, as a path relative to `root`. */
export function unitOf(root, file) {
  const rel = path.relative(root, file).split(path.sep).join('/');
  const dir = path.posix.dirname(rel);
  return LOOSE_FOLDERS.has(dir) ? rel : dir;
}

function listTs(dir, out) {
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) listTs(p, out);
    else if (e.name.endsWith('.ts') && !e.name.endsWith('.d.ts')) out.push(p);
  }
  return out;
}

/** Every file's resolved imports under `root`'s src/ and webview/. */
export function importGraph(root) {
  const graph = new Map();
  for (const r of ROOTS) {
    if (!fs.existsSync(path.join(root, r))) continue;
    for (const f of listTs(path.join(root, r), [])) {
      const deps = importSpecifiers(fs.readFileSync(f, 'utf8')).map((s) => resolveImport(f, s)).filter((d) => d !== undefined);
      graph.set(f, new Set(deps));
    }
  }
  return graph;
}

/** The shortest path from `from` to `to` in `edges` (node → neighbours), or undefined. */
export function pathBetween(edges, from, to) {
  const prev = new Map([[from, undefined]]);
  const queue = [from];
  while (queue.length > 0) {
    const n = queue.shift();
    if (n === to) {
      const p = [];
      for (let c = to; c !== undefined; c = prev.get(c)) p.unshift(c);
      return p;
    }
    for (const m of edges.get(n) ?? []) {
      if (!prev.has(m)) {
        prev.set(m, n);
        queue.push(m);
      }
    }
  }
  return undefined;
}

/** The unit graph of a file graph: unit → units it imports (itself excluded). */
export function unitGraph(root, graph) {
  const units = new Map();
  for (const [f, deps] of graph) {
    const u = unitOf(root, f);
    const set = units.get(u) ?? new Set();
    for (const d of deps) if (unitOf(root, d) !== u) set.add(unitOf(root, d));
    units.set(u, set);
  }
  return units;
}

/** Import graphs by repository root, read once per ESLint process (a lint run reads ~200 files once, not per file). */
const graphs = new Map();

/** @type {import('eslint').Rule.RuleModule} */
export const noImportCycle = {
  meta: {
    type: 'problem',
    docs: { description: 'No import cycle between files or between folders, type-only imports included' },
    schema: [],
    messages: {
      file: 'Import cycle: {{cycle}}',
      folder: 'Folder import cycle: {{cycle}} (this file imports {{to}}, which already depends on {{from}})',
    },
  },
  create(context) {
    const root = context.cwd;
    const file = path.resolve(context.filename);
    const rel = path.relative(root, file).split(path.sep).join('/');
    if (!ROOTS.some((r) => rel.startsWith(`${r}/`))) return {};
    if (!graphs.has(root)) graphs.set(root, importGraph(root));
    const cached = graphs.get(root);
    const show = (f) => path.relative(root, f).split(path.sep).join('/');
    let units;
    const check = (node, spec) => {
      const to = typeof spec === 'string' ? resolveImport(file, spec) : undefined;
      if (to === undefined) return;
      const back = pathBetween(cached, to, file);
      if (back) {
        context.report({ node, messageId: 'file', data: { cycle: [file, ...back].map(show).join(' → ') } });
        return;
      }
      const [uFrom, uTo] = [unitOf(root, file), unitOf(root, to)];
      if (uFrom === uTo) return;
      const unitBack = pathBetween(units, uTo, uFrom);
      if (unitBack) context.report({ node, messageId: 'folder', data: { cycle: [uFrom, ...unitBack].join(' → '), from: uFrom, to: uTo } });
    };
    return {
      Program() {
        // This file's imports as its text stands now (an editor's unsaved change included).
        const deps = importSpecifiers(context.sourceCode.text).map((s) => resolveImport(file, s)).filter((d) => d !== undefined);
        cached.set(file, new Set(deps));
        units = unitGraph(root, cached);
      },
      ImportDeclaration: (node) => check(node, node.source.value),
      ExportNamedDeclaration: (node) => node.source && check(node, node.source.value),
      ExportAllDeclaration: (node) => check(node, node.source.value),
      ImportExpression: (node) => node.source.type === 'Literal' && check(node, node.source.value),
    };
  },
};

export default { rules: { 'no-import-cycle': noImportCycle } };
