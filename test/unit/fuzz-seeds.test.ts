// The fuzzer's short seed set, so CI runs it with every `npm test`: 1100 seeded inputs (100 per target, about 15 s) through
// the real loaders, message checks, the engine dispatcher and EngineClient in a child process, with no crash, hang, silent
// wrong answer, control character or memory overrun (`npm run fuzz` runs a long one; see the README).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';

const ROOT = path.join(__dirname, '../..');

test('npm run fuzz on the seed set: every target, no crash, hang, silent answer, control character or overrun', () => {
  const r = spawnSync(process.execPath, ['--import', 'tsx', path.join(ROOT, 'test/fuzz/main.ts'), '--seed', '1', '--count', '1100', '--timeout', '120', '--quiet'],
    { cwd: ROOT, encoding: 'utf8', timeout: 300_000 });
  assert.equal(r.status, 0, r.stdout + r.stderr);
  const rows = new Map(r.stdout.split('\n').map((l) => l.trim().split(/\s+/)).filter((c) => c.length === 10).map((c) => [c[0], c.slice(1).map(Number)]));
  for (const target of ['gguf', 'safetensors', 'config', 'tokenizer', 'adapter', 'checkpoint', 'examples', 'task', 'webview', 'engine', 'client']) {
    const row = rows.get(target);
    assert.ok(row, `${target} has a row:\n${r.stdout}`);
    assert.equal(row[0], 100, `${target} ran 100 inputs`);
    assert.ok(row[1] > 0, `${target}: some inputs are refused with a clear error`);
  }
  assert.deepEqual(rows.get('total')!.slice(4), [0, 0, 0, 0, 0], 'silent, control, crash, hang, rss');
  assert.match(r.stdout, /no crash, hang, silent wrong answer, control character or memory overrun/);
});
