// The host's model settings and state: checking settings.json values, resolving the model on disk
// (a configured path, or the default model in global storage with its .verified stamp), and what
// the status bar says in each state.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { checkModelCandidate, expandModelPath, isRelativeModelPath, loadKey, modelDisplayName, readModelSettings, resolveModelSource, settingOrigin } from '../../src/model/modelSettings';
import { percent, statusView } from '../../src/model/modelState';
import { modelPath } from '../../src/store/modelCache';
import { coresFromCpuinfo, physicalCores } from '../../src/common/cpuCores';
import type { ModelManifest } from '../../src/engine/model/modelManifest';
import { tempDir } from './temp-helpers';

/** The settings as VS Code would hand them over, every value set in user settings or (with `origin`) in the workspace's. */
const settingsFrom = (values: Record<string, unknown>, origin: 'user' | 'workspace' = 'user') =>
  readModelSettings(
    (k) => values[k],
    (k) => (values[k] === undefined ? {} : origin === 'user' ? { globalValue: values[k] } : { workspaceValue: values[k] }),
  );

const CORES = physicalCores();

test('settings default to the downloaded model, q4, a thread per physical core and device auto', () => {
  assert.deepEqual(settingsFrom({}), { settings: { path: '', precision: 'q4', threads: CORES, device: 'auto' }, problems: [] });
  assert.deepEqual(settingsFrom({ 'engine.threads': 'auto' }), { settings: { path: '', precision: 'q4', threads: CORES, device: 'auto' }, problems: [] });
  assert.deepEqual(settingsFrom({ 'model.path': '  /m/a.gguf ', 'model.precision': 'f32', 'engine.threads': 4, 'engine.device': 'webgpu' }).settings,
    { path: '/m/a.gguf', precision: 'f32', threads: 4, device: 'webgpu' });
});

test('"auto" threads count physical cores: two hardware threads of one core are one', () => {
  const cpu = (p: number, pkg: number, core: number) => `processor\t: ${p}\nvendor_id\t: GenuineIntel\nphysical id\t: ${pkg}\ncore id\t\t: ${core}\n`;
  // 2 packages × 2 cores × 2 hardware threads.
  const smt = [cpu(0, 0, 0), cpu(1, 0, 1), cpu(2, 1, 0), cpu(3, 1, 1), cpu(4, 0, 0), cpu(5, 0, 1), cpu(6, 1, 0), cpu(7, 1, 1)].join('\n');
  assert.equal(coresFromCpuinfo(smt), 4);
  assert.equal(coresFromCpuinfo([cpu(0, 0, 0), cpu(1, 0, 1)].join('\n')), 2);
  // No topology (some ARM kernels, some VMs): unknown, and the logical CPUs count.
  assert.equal(coresFromCpuinfo('processor\t: 0\nBogoMIPS\t: 50.00\n\nprocessor\t: 1\nBogoMIPS\t: 50.00\n'), undefined);
  assert.ok(CORES >= 1);
});

test('bad setting values fall back to their defaults and are reported by name', () => {
  const r = settingsFrom({ 'model.path': 42, 'model.precision': 'int8', 'engine.threads': 0.5, 'engine.device': 'cuda' });
  assert.deepEqual(r.settings, { path: '', precision: 'q4', threads: CORES, device: 'auto' });
  assert.equal(r.problems.length, 4);
  assert.match(r.problems[0], /gemmaTune\.model\.path/);
  assert.match(r.problems[1], /gemmaTune\.model\.precision .*"int8"/);
  assert.match(r.problems[2], /gemmaTune\.engine\.threads must be "auto" or an integer .*0\.5; using "auto"/);
  assert.match(r.problems[3], /gemmaTune\.engine\.device .*"cuda"; using "auto"/);
  assert.equal(settingsFrom({ 'engine.threads': 65 }).settings.threads, CORES);
  assert.equal(settingsFrom({ 'engine.threads': 'all' }).problems.length, 1);
});

test('a relative model path counts only from the workspace\'s own settings', () => {
  assert.deepEqual(settingsFrom({ 'model.path': 'models/a.gguf' }, 'workspace'), { settings: { path: 'models/a.gguf', precision: 'q4', threads: CORES, device: 'auto' }, problems: [] });
  // From user settings the open folder would decide which file loads: refused, by name.
  const fromUser = settingsFrom({ 'model.path': 'models/a.gguf' });
  assert.equal(fromUser.settings.path, '');
  assert.match(fromUser.problems[0], /gemmaTune\.model\.path "models\/a\.gguf" is relative, which only a workspace's settings may be/);
  for (const p of ['/m/a.gguf', '~/m/a.gguf', '~']) assert.deepEqual(settingsFrom({ 'model.path': p }).problems, [], p);
  assert.equal(isRelativeModelPath('./a.gguf'), true);
  assert.equal(isRelativeModelPath('..\\a.gguf'), true);
  assert.equal(isRelativeModelPath(''), false);
  // Where a value comes from, in VS Code's order: a folder's, the workspace's, the user's.
  assert.equal(settingOrigin({ globalValue: 'a', workspaceFolderValue: 'b' }), 'workspace');
  assert.equal(settingOrigin({ globalValue: 'a', workspaceValue: 'b' }), 'workspace');
  assert.equal(settingOrigin({ globalValue: 'a' }), 'user');
  assert.equal(settingOrigin({}), 'default');
  assert.equal(settingOrigin(undefined), 'default');
});

test('model paths expand ~ and resolve relative paths from the workspace folder', () => {
  assert.equal(expandModelPath('~/models/a.gguf', { home: '/home/u' }), '/home/u/models/a.gguf');
  assert.equal(expandModelPath('models/a.gguf', { workspaceFolder: '/ws' }), '/ws/models/a.gguf');
  assert.equal(expandModelPath('/abs/../a.gguf', { workspaceFolder: '/ws' }), '/a.gguf');
});

test('the load key changes with the file, precision, threads or device, and nothing else', () => {
  const k = loadKey('/m/a.gguf', { precision: 'q4', threads: 2, device: 'auto' });
  assert.equal(loadKey('/m/../m/a.gguf', { precision: 'q4', threads: 2, device: 'auto' }), k);
  assert.notEqual(loadKey('/m/b.gguf', { precision: 'q4', threads: 2, device: 'auto' }), k);
  assert.notEqual(loadKey('/m/a.gguf', { precision: 'f32', threads: 2, device: 'auto' }), k);
  assert.notEqual(loadKey('/m/a.gguf', { precision: 'q4', threads: 3, device: 'auto' }), k);
  assert.notEqual(loadKey('/m/a.gguf', { precision: 'q4', threads: 2, device: 'cpu' }), k);
  assert.equal(modelDisplayName('/m/gemma-3-270m-it-qat-Q4_0.gguf'), 'gemma-3-270m-it-qat-Q4_0');
  assert.equal(modelDisplayName('/m/tiny/'), 'tiny');
});

test('the source is the configured path, the verified default model, or what is missing', async (t) => {
  const dir = tempDir('hostmodel-', t);
  const storage = path.join(dir, 'storage');
  const manifest: ModelManifest = { id: 'm', title: 'M', repo: 'o/r', revision: 'abc', file: 'm.gguf', size: 4, gated: false };
  const settings = { path: '', precision: 'q4' as const, threads: 2, device: 'auto' as const };

  assert.deepEqual(await resolveModelSource(settings, storage, { manifest }), { kind: 'not-downloaded', path: modelPath(storage, manifest), manifest });
  // The file alone is not enough: only a download that was verified counts.
  const file = modelPath(storage, manifest);
  mkdirSync(path.dirname(file), { recursive: true });
  writeFileSync(file, 'GGUF');
  assert.equal((await resolveModelSource(settings, storage, { manifest })).kind, 'not-downloaded');
  writeFileSync(`${file}.verified`, JSON.stringify({ size: 4, sha256: 'x' }));
  assert.deepEqual(await resolveModelSource(settings, storage, { manifest }), { kind: 'default', path: file, manifest });

  const local = path.join(dir, 'local.gguf');
  assert.deepEqual(await resolveModelSource({ ...settings, path: 'local.gguf' }, storage, { workspaceFolder: dir }), { kind: 'configured-missing', path: local });
  writeFileSync(local, 'GGUF');
  assert.deepEqual(await resolveModelSource({ ...settings, path: 'local.gguf' }, storage, { workspaceFolder: dir }), { kind: 'configured', path: local });
  // A FIFO is never handed to the engine: reading it would wait for a writer forever.
  execFileSync('mkfifo', [path.join(dir, 'pipe.gguf')]);
  assert.deepEqual(await resolveModelSource({ ...settings, path: 'pipe.gguf' }, storage, { workspaceFolder: dir }), {
    kind: 'configured-missing', path: path.join(dir, 'pipe.gguf'), problem: 'is a FIFO (named pipe), not a model file or folder',
  });
});

test('a local pick must be a .gguf file or a folder with config.json', async (t) => {
  const dir = tempDir('hostmodel-pick-', t);
  writeFileSync(path.join(dir, 'a.gguf'), 'GGUF');
  writeFileSync(path.join(dir, 'notes.txt'), 'x');
  mkdirSync(path.join(dir, 'hf'));
  assert.equal(await checkModelCandidate(path.join(dir, 'a.gguf')), undefined);
  assert.match((await checkModelCandidate(path.join(dir, 'notes.txt')))!, /not a \.gguf file/);
  assert.match((await checkModelCandidate(path.join(dir, 'hf')))!, /without config\.json/);
  writeFileSync(path.join(dir, 'hf', 'config.json'), '{}');
  assert.equal(await checkModelCandidate(path.join(dir, 'hf')), undefined);
  assert.match((await checkModelCandidate(path.join(dir, 'gone.gguf')))!, /does not exist/);
  execFileSync('mkfifo', [path.join(dir, 'pipe.gguf')]);
  assert.equal(await checkModelCandidate(path.join(dir, 'pipe.gguf')), `${path.join(dir, 'pipe.gguf')} is a FIFO (named pipe): pick a .gguf file or a Hugging Face model folder`);
});

test('the status bar says every state in words and clicks through to the next useful step', () => {
  const cases = [
    [{ kind: 'not-downloaded', sizeMB: 241 }, /no model/, 'download', /241 MB/],
    [{ kind: 'missing', path: '/m/x.gguf' }, /model not found/, 'useLocal', /\/m\/x\.gguf/],
    [{ kind: 'downloading', fraction: 0.426 }, /downloading 42%/, 'status', /42%/],
    [{ kind: 'downloading' }, /downloading$/, 'status', /downloading/],
    [{ kind: 'available', name: 'tiny' }, /Gemma: tiny/, 'status', /loads on first use/],
    [{ kind: 'loading', name: 'tiny' }, /loading/, 'status', /loading tiny/],
    [{ kind: 'ready', name: 'tiny', precision: 'q4', loadSeconds: 1.23 }, /Gemma: tiny/, 'status', /ready \(q4, loaded in 1\.2 s\)/],
    [{ kind: 'error', name: 'tiny', message: 'bad magic' }, /model failed/, 'useLocal', /bad magic/],
    [{ kind: 'missing', path: '/m/p.gguf', problem: 'is a FIFO (named pipe), not a model file or folder' }, /model not found/, 'useLocal', /\/m\/p\.gguf is a FIFO/],
    [{ kind: 'engine-crashed', message: 'the engine was killed (SIGKILL)' }, /engine crashed/, 'status', /killed \(SIGKILL\)\. It starts again on the next request; your tasks, examples and adapters are unchanged/],
    [{ kind: 'engine-stopped', message: 'the engine crashed 3 times within 60 s' }, /engine stopped/, 'restart', /3 times within 60 s\. Click to restart the engine/],
  ] as const;
  for (const [state, text, action, tooltip] of cases) {
    const v = statusView(state);
    assert.match(v.text, text, JSON.stringify(state));
    assert.equal(v.action, action, JSON.stringify(state));
    assert.match(v.tooltip, tooltip, JSON.stringify(state));
    assert.match(v.ariaLabel, /^Gemma: \w/);
  }
  assert.equal(percent(1.5), 100);
  assert.equal(percent(-1), 0);
});

test('package.json gives every setting a deliberate scope and keeps the model settings from untrusted workspaces', () => {
  const manifest = JSON.parse(readFileSync(path.join(__dirname, '../../package.json'), 'utf8')) as {
    capabilities: { untrustedWorkspaces: { supported: unknown; description?: string; restrictedConfigurations?: string[] } };
    contributes: { configuration: { properties: Record<string, { scope?: string }> } };
  };
  const props = manifest.contributes.configuration.properties;
  const scopes = Object.fromEntries(Object.entries(props).map(([k, v]) => [k, v.scope]));
  assert.deepEqual(scopes, {
    'gemmaTune.model.path': 'machine-overridable',
    'gemmaTune.model.precision': 'machine-overridable',
    'gemmaTune.engine.threads': 'machine',
    'gemmaTune.engine.device': 'machine',
    'gemmaTune.codeActions.languages': 'window',
    'gemmaTune.codeActions.precompute': 'window',
    'gemmaTune.extract.placement': 'window',
    'gemmaTune.training.confirmLongerThanMinutes': 'window',
  });
  const trust = manifest.capabilities.untrustedWorkspaces;
  assert.equal(trust.supported, 'limited');
  assert.match(trust.description ?? '', /Restricted Mode/);
  assert.deepEqual(trust.restrictedConfigurations, ['gemmaTune.model.path', 'gemmaTune.model.precision']);
  // A misspelt key would restrict nothing.
  for (const key of trust.restrictedConfigurations ?? []) assert.ok(props[key], `${key} is a declared setting`);
});
