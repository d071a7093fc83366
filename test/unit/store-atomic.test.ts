// Atomic writes, async (the host) and sync (worker, CLI): the old file survives a failing producer and a
// process killed in the middle of replacing it, and no temporary file is left behind.
import { spawn } from 'node:child_process';
import { promises as fs, readFileSync, readdirSync } from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isTempName, writeFileAtomic, writeFileAtomicSync, writeFileStreaming, writeJsonAtomic } from '../../src/common/atomicWrite';
import { tempDir } from './temp-helpers';

test('writeFileAtomic replaces the content and leaves no temporary file', async (t) => {
  const dir = tempDir('gemma-atomic-', t);
  const file = path.join(dir, 'a.jsonl');
  await fs.writeFile(file, 'old\n');
  await writeFileAtomic(file, 'new\n');
  assert.equal(await fs.readFile(file, 'utf8'), 'new\n');
  assert.deepEqual(await fs.readdir(dir), ['a.jsonl']);
  await writeJsonAtomic(file, { a: 1 });
  assert.deepEqual(JSON.parse(await fs.readFile(file, 'utf8')), { a: 1 });
});

test('writeFileAtomic streams chunks from an async iterable', async (t) => {
  const dir = tempDir('gemma-atomic-', t);
  const file = path.join(dir, 'b.txt');
  async function* gen() {
    yield 'one ';
    yield Buffer.from('two');
  }
  await writeFileAtomic(file, gen());
  assert.equal(await fs.readFile(file, 'utf8'), 'one two');
});

test('a failing source leaves the old file and removes the temporary file', async (t) => {
  const dir = tempDir('gemma-atomic-', t);
  const file = path.join(dir, 'c.txt');
  await fs.writeFile(file, 'precious');
  async function* gen() {
    yield 'half of the new';
    throw new Error('source broke');
  }
  await assert.rejects(writeFileAtomic(file, gen()), /source broke/);
  assert.equal(await fs.readFile(file, 'utf8'), 'precious');
  assert.deepEqual(await fs.readdir(dir), ['c.txt']);
});

test('the sync writers replace the file, create its folder, and leave the old file when the producer throws', (t) => {
  const dir = tempDir('gemma-atomic-', t);
  const file = path.join(dir, 'sub', 'm.bin');
  writeFileAtomicSync(file, ['ab', Buffer.from('cd')]);
  assert.equal(readFileSync(file, 'utf8'), 'abcd');
  // Larger than the sink's 4 MiB buffer, in pieces that straddle it.
  const big = Buffer.alloc((5 << 20) + 7, 0x61);
  writeFileStreaming(file, (sink) => {
    for (let at = 0; at < big.length; at += 3 << 20) sink.write(big.subarray(at, at + (3 << 20)));
    assert.equal(sink.written, big.length);
  });
  assert.ok(readFileSync(file).equals(big));
  assert.throws(() => writeFileStreaming(file, (sink) => {
    sink.write(Buffer.from('half'));
    throw new Error('producer broke');
  }), /producer broke/);
  assert.ok(readFileSync(file).equals(big));
  assert.deepEqual(readdirSync(path.dirname(file)), ['m.bin']);
});

test('a process killed (SIGKILL) mid-write leaves the old file intact', async (t) => {
  const dir = tempDir('gemma-atomic-', t);
  const file = path.join(dir, 'examples.jsonl');
  const old = '{"id":"ex-1","messages":[]}\n'.repeat(100);
  await fs.writeFile(file, old);
  const modulePath = path.resolve(__dirname, '../../src/common/atomicWrite.ts');
  // The child writes 1 MiB of the new content, says "mid", then waits to be killed.
  const script = `
    const { writeFileAtomic } = require(${JSON.stringify(modulePath)});
    async function* gen() {
      yield Buffer.alloc(1 << 20, 0x78);
      process.stdout.write('mid\\n');
      await new Promise(() => {});
    }
    writeFileAtomic(${JSON.stringify(file)}, gen());
    setInterval(() => {}, 1000);
  `;
  const child = spawn(process.execPath, ['--import', 'tsx', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise<void>((resolve, reject) => {
    child.stdout.on('data', (d: Buffer) => {
      if (d.toString().includes('mid')) resolve();
    });
    child.on('exit', (code) => reject(new Error(`child exited early with ${code}`)));
  });
  const tempFiles = (await fs.readdir(dir)).filter(isTempName);
  assert.equal(tempFiles.length, 1, 'the new content was being written to a temporary file');
  assert.equal((await fs.stat(path.join(dir, tempFiles[0]))).size, 1 << 20);
  child.kill('SIGKILL');
  await new Promise((r) => child.once('exit', r));
  assert.equal(await fs.readFile(file, 'utf8'), old);
});
