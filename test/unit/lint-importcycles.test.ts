// The lint rule local/no-import-cycle (scripts/importCycles.mjs) on small trees written to a temporary
// folder: a file cycle through a type-only import, a folder cycle whose files form none, and a
// tree that imports one way.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ESLint } from 'eslint';
import tseslint from 'typescript-eslint';

async function lint(files: Record<string, string>): Promise<string[]> {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'gt-cycles-'));
  try {
    for (const [name, text] of Object.entries(files)) {
      fs.mkdirSync(path.dirname(path.join(root, name)), { recursive: true });
      fs.writeFileSync(path.join(root, name), text);
    }
    const { default: plugin } = await import('../../scripts/importCycles.mjs');
    const eslint = new ESLint({
      cwd: root,
      overrideConfigFile: true,
      overrideConfig: [{
        files: ['**/*.ts'],
        languageOptions: { parser: tseslint.parser as never },
        plugins: { local: plugin },
        rules: { 'local/no-import-cycle': 'error' },
      }],
    });
    const results = await eslint.lintFiles(['src/**/*.ts']);
    return results.flatMap((r) => r.messages.map((m) => `${path.relative(root, r.filePath)}:${m.line} ${m.message}`)).sort();
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
}

test('a cycle through a type-only import is reported at both imports', async () => {
  const found = await lint({
    'src/a/one.ts': "import type { B } from './two';\nexport interface A { b?: B }\n",
    'src/a/two.ts': "import type { A } from './one';\nexport interface B { a?: A }\n",
  });
  assert.deepEqual(found, [
    'src/a/one.ts:1 Import cycle: src/a/one.ts → src/a/two.ts → src/a/one.ts',
    'src/a/two.ts:1 Import cycle: src/a/two.ts → src/a/one.ts → src/a/two.ts',
  ]);
});

test('folders that import each other are a cycle even when their files are not', async () => {
  const found = await lint({
    'src/store/task.ts': "import { check } from '../protocol/check';\nexport const task = check;\n",
    'src/protocol/check.ts': 'export const check = 1;\n',
    'src/protocol/message.ts': "import { task } from '../store/task';\nexport const message = task;\n",
  });
  assert.equal(found.length, 2, found.join('\n'));
  assert.match(found[0]!, /^src\/protocol\/message\.ts:1 Folder import cycle: src\/protocol → src\/store → src\/protocol/);
  assert.match(found[1]!, /^src\/store\/task\.ts:1 Folder import cycle: src\/store → src\/protocol → src\/store/);
});

test('imports that point one way pass, and files directly in src/ are units of their own', async () => {
  const found = await lint({
    'src/extension.ts': "import { run } from './commands/run';\nimport type { S } from './services';\nexport const go = (s: S) => run(s);\n",
    'src/services.ts': "import type { M } from './model/model';\nexport interface S { m: M }\n",
    'src/model/model.ts': 'export interface M { n: number }\n',
    'src/commands/run.ts': "import type { S } from '../services';\nexport const run = (s: S) => s.m.n;\n",
  });
  assert.deepEqual(found, []);
});
