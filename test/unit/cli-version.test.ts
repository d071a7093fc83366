// `gemma-tune --version` / `-v` print package.json's version, and `gemma-tune help` lists the flag.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

const root = path.resolve(__dirname, '../..');
const { version } = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')) as { version: string };
const cli = (...args: string[]) => spawnSync(process.execPath, ['--import', 'tsx', path.join(root, 'src/cli/main.ts'), ...args], { cwd: root, encoding: 'utf8' });

for (const flag of ['--version', '-v']) {
  test(`gemma-tune ${flag} prints the version and exits 0`, () => {
    const r = cli(flag);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout, `${version}\n`);
  });
}

test('gemma-tune help lists --version', () => {
  const r = cli('help');
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /^ {2}gemma-tune --version \| -v$/m);
});
