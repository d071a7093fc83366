// What a repository can plant inside `.gemma/`: links (to ~/.ssh/id_rsa, to /dev/zero), named pipes,
// devices, oversized files, links in place of folders, and temporary files of a crashed write. Each is
// refused with a message naming the file and what it is, never quoting what it points at, and nothing
// is read from it, copied aside, or written through it.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { checkAdapterFiles, findInterruptedRun, stagingDir } from '../../src/store/adapterStage';
import { readGuarded, removeLeftoverTemps, UnsafeFileError } from '../../src/store/safeFile';
import { MAX_TASK_FILE_BYTES, TaskStore } from '../../src/store/taskStore';
import { adapterOfGeneration, namesIn } from './store-helpers';
import { tempDir } from './temp-helpers';

const root = tempDir('store-unsafe-');
const KEY = '-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\n-----END OPENSSH PRIVATE KEY-----\n';
const secret = path.join(root, 'id_rsa');
fs.writeFileSync(secret, KEY);

async function newTask() {
  const ws = fs.mkdtempSync(path.join(root, 'ws-'));
  const backups: string[] = [];
  const store = TaskStore.forWorkspace(ws, { onBackup: (_f, b) => backups.push(b) });
  const task = await store.create({ name: 'T', kind: 'generate', instruction: '' });
  return { ws, store, task, backups, examples: path.join(task.dir, 'examples.jsonl') };
}

/** An assertion that `e` is the refusal of `file` as `what`, quoting nothing of the secret. */
const refusal = (file: string, what: RegExp) => (e: unknown) => {
  assert.ok(e instanceof UnsafeFileError, String(e));
  assert.ok(e.message.startsWith(`${file}: `), e.message);
  assert.match(e.message, what);
  for (const bit of ['PRIVATE', 'b3Blbn', 'BEGIN']) assert.ok(!e.message.includes(bit), `the message quotes the target: ${e.message}`);
  return true;
};

/** Makes a named pipe; false where there are none. */
function mkfifo(file: string): boolean {
  if (process.platform === 'win32') return false;
  execFileSync('mkfifo', [file]);
  return true;
}

test('examples.jsonl as a link to a private key: refused, not shown as problems, not copied aside', async () => {
  const { store, task, backups, examples } = await newTask();
  fs.rmSync(examples);
  fs.symlinkSync(secret, examples);
  await assert.rejects(store.examples(task.id), refusal(examples, /is a symbolic link; Gemma Tune reads only regular files inside \.gemma/));
  await assert.rejects(store.addExamples(task.id, [{ input: 'x' }]), refusal(examples, /symbolic link/));
  await assert.rejects(store.saveConfig(task.id, { ...task.config, instruction: 'New' }), refusal(examples, /symbolic link/));
  // The panel shows the refusal: from then on the file is not reported as changing again and again.
  await assert.rejects(store.shown(task.id), refusal(examples, /symbolic link/));
  assert.equal(await store.changedOnDisk(task.id), false, 'a refused file is not reported as changing again and again');
  assert.deepEqual(backups, []);
  assert.deepEqual(namesIn(task.dir).filter((n) => n.includes('.bad-')), [], 'no copy of the target in the workspace');
  assert.equal(fs.lstatSync(examples).isSymbolicLink(), true, 'nothing was written through or over the link');
  assert.equal(fs.readFileSync(secret, 'utf8'), KEY);
  assert.deepEqual((await store.list()).map((e) => e.id), [task.id], 'the task itself still lists');
  // metrics.jsonl and task.json the same way.
  const metrics = path.join(task.dir, 'metrics.jsonl');
  fs.symlinkSync(secret, metrics);
  await assert.rejects(store.metrics(task.id), refusal(metrics, /symbolic link/));
  const taskFile = path.join(task.dir, 'task.json');
  fs.rmSync(taskFile);
  fs.symlinkSync(secret, taskFile);
  await assert.rejects(store.get(task.id), refusal(taskFile, /symbolic link/));
  const [entry] = await store.list();
  assert.ok('error' in entry && /symbolic link/.test(entry.error) && !entry.error.includes('PRIVATE'));
});

test('a link to /dev/zero, a named pipe and a device are refused at once, unread', async (t) => {
  const { store, task, examples } = await newTask();
  fs.rmSync(examples);
  fs.symlinkSync('/dev/zero', examples);
  const t0 = Date.now();
  await assert.rejects(store.examples(task.id), refusal(examples, /symbolic link/));
  assert.ok(Date.now() - t0 < 1000, 'refused without reading');
  fs.rmSync(examples);

  if (!mkfifo(examples)) return t.skip('no named pipes here');
  await assert.rejects(store.examples(task.id), refusal(examples, /is a named pipe \(FIFO\)/));
  await assert.rejects(store.addExamples(task.id, [{ input: 'x' }]), refusal(examples, /named pipe/));
  const taskFile = path.join(task.dir, 'task.json');
  fs.rmSync(taskFile);
  mkfifo(taskFile);
  await assert.rejects(store.get(task.id), refusal(taskFile, /named pipe/));
  // The trainer's checkpoint as a pipe: the panel's resume check says "nothing to resume" and goes on.
  const adapterDir = store.adapterDir(task.id);
  fs.mkdirSync(stagingDir(adapterDir), { recursive: true });
  fs.writeFileSync(path.join(stagingDir(adapterDir), 'run.json'), '{}');
  mkfifo(path.join(stagingDir(adapterDir), 'trainer_state.safetensors'));
  assert.equal(await findInterruptedRun(adapterDir), null);

  const device = path.join(task.dir, 'device');
  try {
    execFileSync('mknod', [device, 'c', '1', '3'], { stdio: 'ignore' }); // what /dev/null is
  } catch {
    return t.skip('mknod is not allowed here (not root)');
  }
  await assert.rejects(readGuarded(device, 1024), refusal(device, /is a device/));
});

test('oversized task.json and examples.jsonl are refused with their size, without being read', async () => {
  const { store, task, examples } = await newTask();
  const taskFile = path.join(task.dir, 'task.json');
  const text = fs.readFileSync(taskFile, 'utf8');
  fs.writeFileSync(taskFile, text.replace('{', '{' + ' '.repeat(MAX_TASK_FILE_BYTES)));
  await assert.rejects(store.get(task.id), refusal(taskFile, new RegExp(`^.*: ${MAX_TASK_FILE_BYTES + text.length} bytes is more than the ${MAX_TASK_FILE_BYTES} Gemma Tune reads from this file$`)));
  fs.writeFileSync(taskFile, text);
  // Sparse: 65 MB on paper, nothing on the disk.
  fs.truncateSync(examples, 65 * 1024 * 1024);
  await assert.rejects(store.examples(task.id), refusal(examples, /68157440 bytes is more than the 67108864/));
  await assert.rejects(store.addExamples(task.id, [{ input: 'x' }]), refusal(examples, /bytes is more than/));
  assert.equal(fs.statSync(examples).size, 65 * 1024 * 1024, 'left as it was');
});

test('links in place of a task folder, .gemma/tasks or .gemma are not followed', async () => {
  const { ws, store, task } = await newTask();
  const elsewhere = fs.mkdtempSync(path.join(root, 'elsewhere-'));
  fs.cpSync(task.dir, path.join(elsewhere, 'linked'), { recursive: true });
  const link = path.join(store.root, 'linked');
  fs.symlinkSync(path.join(elsewhere, 'linked'), link);
  const entries = await store.list();
  assert.deepEqual(entries.map((e) => [e.id, 'task' in e]), [['linked', false], ['t', true]]);
  assert.match((entries[0] as { error: string }).error, /linked: is a symbolic link/);
  await assert.rejects(store.get('linked'), /linked: is a symbolic link; Gemma Tune does not follow links inside \.gemma/);
  await assert.rejects(store.addExamples('linked', [{ input: 'x' }]), /is a symbolic link/);
  assert.equal(fs.readFileSync(path.join(elsewhere, 'linked', 'examples.jsonl'), 'utf8'), '', 'nothing written through the link');

  const gemma = path.join(ws, '.gemma');
  fs.renameSync(gemma, path.join(elsewhere, 'gemma'));
  fs.symlinkSync(path.join(elsewhere, 'gemma'), gemma);
  await assert.rejects(store.list(), /\.gemma: is a symbolic link/);
  await assert.rejects(store.get(task.id), /\.gemma: is a symbolic link/);
  await assert.rejects(store.create({ name: 'New', kind: 'generate', instruction: '' }), /\.gemma: is a symbolic link/);

  const other = await newTask();
  fs.renameSync(other.store.root, path.join(elsewhere, 'tasks'));
  fs.symlinkSync(path.join(elsewhere, 'tasks'), other.store.root);
  await assert.rejects(other.store.list(), /tasks: is a symbolic link/);
  await assert.rejects(other.store.addExamples(other.task.id, [{ input: 'x' }]), /tasks: is a symbolic link/);
});

test('adapter files the engine would read must be regular files in a real folder', async (t) => {
  const { store, task } = await newTask();
  const adapterDir = store.adapterDir(task.id);
  adapterOfGeneration(adapterDir, 1);
  await checkAdapterFiles(adapterDir);
  assert.equal(await store.hasAdapter(task.id), true);
  const weights = path.join(adapterDir, 'adapter_model.safetensors');
  fs.rmSync(weights);
  fs.symlinkSync(secret, weights);
  await assert.rejects(checkAdapterFiles(adapterDir), refusal(weights, /symbolic link/));
  assert.equal(await store.hasAdapter(task.id), false);
  fs.rmSync(weights);
  if (!mkfifo(weights)) return t.skip('no named pipes here');
  await assert.rejects(checkAdapterFiles(adapterDir), refusal(weights, /named pipe/));
});

test('temporary files of a crashed write are removed; a live writer\'s are left alone', async () => {
  const dir = fs.mkdtempSync(path.join(root, 'temps-'));
  const deadPid = 2 ** 22 + 4321; // above Linux's largest process id
  const live = `.examples.jsonl.${process.pid}.00aa11bb.gemma-tmp`;
  const dead = `.examples.jsonl.${deadPid}.00aa11bb.gemma-tmp`;
  const old = `.task.json.${process.pid}.22cc33dd.gemma-tmp`;
  for (const n of [live, dead, old, 'examples.jsonl']) fs.writeFileSync(path.join(dir, n), 'x');
  const hourAgo = new Date(Date.now() - 3600_000);
  fs.utimesSync(path.join(dir, old), hourAgo, hourAgo);
  assert.deepEqual((await removeLeftoverTemps(dir)).sort(), [dead, old].sort());
  assert.deepEqual(namesIn(dir), [live, 'examples.jsonl'].sort());
  assert.deepEqual(await removeLeftoverTemps(dir, { all: true }), [live]);
});
