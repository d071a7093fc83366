// Promoting a staged adapter (adapter.training → adapter/, two renames) is recoverable at every instant:
// stopped after each of its steps, as a crash would stop it, and SIGKILLed at random moments in a real
// process, the next start (the next training lock, or the next look for a trained adapter) finds a
// whole adapter that loads and is finite: the previous one when the promotion had not put the new one
// in place, the new one once it had.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { before, test } from 'node:test';
import { promotionPlan, recoverPromotion, stagingDir } from '../../src/store/adapterStage';
import { TaskStore } from '../../src/store/taskStore';
import { adapterGeneration, adapterOfGeneration, buildChild, kill, namesIn, startChild } from './store-helpers';
import { tempDir } from './temp-helpers';

const root = tempDir('store-promote-');
let child: string;
before(async () => {
  child = await buildChild('store-promotion');
});

const ADAPTER_FILES = ['adapter_config.json', 'adapter_model.safetensors'];

async function newTask() {
  const store = TaskStore.forWorkspace(fs.mkdtempSync(path.join(root, 'ws-')));
  const task = await store.create({ name: 'T', kind: 'generate', instruction: '' });
  return { store, id: task.id, adapterDir: store.adapterDir(task.id), taskDir: task.dir };
}

/** What is beside adapter/ in the task folder, promotion-wise. */
const leftovers = (taskDir: string) => namesIn(taskDir).filter((n) => n === 'adapter.old' || n === 'adapter.new');

test('a promotion stopped after any of its steps comes back whole: the old adapter before the new one is in place, the new one after', async () => {
  const seen: string[] = [];
  for (const keepRunState of [false, true]) {
    for (const previous of [true, false]) {
      const steps = promotionPlan('x', { keepRunState }).map((s) => s.name);
      assert.deepEqual(steps, ['prepare', 'set-aside', 'put-in-place', 'drop-old']);
      for (let stopAfter = 0; stopAfter <= steps.length; stopAfter++) {
        const { store, id, adapterDir, taskDir } = await newTask();
        if (previous) adapterOfGeneration(adapterDir, 1);
        adapterOfGeneration(stagingDir(adapterDir), 2);
        fs.writeFileSync(path.join(stagingDir(adapterDir), 'run.json'), '{}');
        fs.writeFileSync(path.join(stagingDir(adapterDir), 'trainer_state.safetensors'), 'resume state');
        for (const step of promotionPlan(adapterDir, { keepRunState }).slice(0, stopAfter)) await step.run();
        const where = `keepRunState ${keepRunState}, ${previous ? 'with' : 'without'} a previous adapter, stopped after ${steps[stopAfter - 1] ?? 'nothing'}`;
        seen.push(`${where}: ${leftovers(taskDir).join(' ') || '-'}`);

        // The next start: the code actions' look for a trained adapter puts it right.
        const inPlace = stopAfter >= steps.indexOf('put-in-place') + 1;
        assert.equal(await store.hasAdapter(id), previous || inPlace, where);
        assert.deepEqual(leftovers(taskDir), [], where);
        if (previous || inPlace) {
          assert.equal(adapterGeneration(adapterDir), inPlace ? 2 : 1, where);
          assert.deepEqual(namesIn(adapterDir), ADAPTER_FILES, `${where}: no run state in adapter/`);
        } else {
          assert.equal(fs.existsSync(adapterDir), false, where);
        }
        // A cancelled run's staging folder keeps its run state for a resume, whatever happened.
        if (keepRunState) assert.deepEqual(namesIn(stagingDir(adapterDir)), [...ADAPTER_FILES, 'run.json', 'trainer_state.safetensors'].sort(), where);
      }
    }
  }
  // The states a crash can leave really occur: the old adapter set aside, and the new copy made.
  assert.ok(seen.some((s) => s.includes('stopped after set-aside: adapter.old')), seen.join('\n'));
  assert.ok(seen.some((s) => s.includes('keepRunState true, with a previous adapter, stopped after prepare: adapter.new')), seen.join('\n'));
});

test('what a crash inside a step leaves (half a copy, half a removal) comes back whole too', async () => {
  const { adapterDir, taskDir } = await newTask();
  adapterOfGeneration(adapterDir, 1);
  // Half of the copy for a cancelled run's promotion.
  fs.mkdirSync(`${adapterDir}.new`);
  fs.copyFileSync(path.join(adapterDir, 'adapter_config.json'), path.join(`${adapterDir}.new`, 'adapter_config.json'));
  assert.equal(await recoverPromotion(adapterDir), 'finished');
  assert.equal(adapterGeneration(adapterDir), 1);
  // Half of the old adapter's removal, after the new one was put in place.
  fs.renameSync(adapterDir, `${adapterDir}.old`);
  adapterOfGeneration(adapterDir, 2);
  fs.rmSync(path.join(`${adapterDir}.old`, 'adapter_model.safetensors'));
  assert.equal(await recoverPromotion(adapterDir), 'finished');
  assert.equal(adapterGeneration(adapterDir), 2);
  // Stopped between the renames: the previous adapter comes back.
  fs.renameSync(adapterDir, `${adapterDir}.old`);
  assert.equal(await recoverPromotion(adapterDir), 'restored');
  assert.equal(adapterGeneration(adapterDir), 2);
  assert.deepEqual(leftovers(taskDir), []);
  assert.equal(await recoverPromotion(adapterDir), 'none');
});

test('a process SIGKILLed right after each step of its promotion leaves an adapter that comes back whole', async () => {
  for (const keep of ['no', 'keep']) {
    for (let n = 0; n <= 4; n++) {
      const { store, id, adapterDir, taskDir } = await newTask();
      adapterOfGeneration(adapterDir, 1);
      const c = startChild(child, ['promote-and-die', store.root, id, keep, '2', String(n)]);
      assert.equal(await c.exited, 'SIGKILL', c.stderr());
      const where = `${keep}, killed after ${n} step(s)`;
      assert.equal(fs.existsSync(adapterDir), n < 2 || n > 2, `${where}: the state a crash leaves`);
      const lock = await store.lockTraining(id);
      assert.equal(adapterGeneration(adapterDir), n >= 3 ? 2 : 1, where);
      assert.deepEqual(namesIn(adapterDir), ADAPTER_FILES, where);
      assert.deepEqual(leftovers(taskDir), [], where);
      await lock.release();
    }
  }
});

test('SIGKILLed at random moments while promoting, a process leaves an adapter that comes back whole and finite', async () => {
  const KILLS = 30;
  const counts = { kills: 0, midPromotion: 0, restored: 0, finished: 0 };
  for (const keep of ['no', 'keep']) {
    const { store, id, adapterDir, taskDir } = await newTask();
    let onDisk = 0;
    for (let k = 0; k < KILLS; k++) {
      const first = onDisk + 1;
      const c = startChild(child, ['promote-loop', store.root, id, keep, String(first)]);
      // Half the kills before the first promotion is acknowledged, half during later ones.
      if (k % 2 === 1) await c.waitFor(new RegExp(`^promoted ${first}$`));
      await new Promise((r) => setTimeout(r, Math.random() * 40));
      await kill(c);
      const acked = Math.max(onDisk, ...c.lines.map((l) => Number(/^promoted (\d+)$/.exec(l)?.[1] ?? 0)));
      const midPromotion = leftovers(taskDir).length > 0 || (onDisk > 0 && !fs.existsSync(adapterDir));
      // The next start: taking the training lock breaks the dead process's lock and recovers.
      const lock = await store.lockTraining(id);
      const g = fs.existsSync(adapterDir) ? adapterGeneration(adapterDir) : 0;
      await lock.release();
      assert.ok(g === acked || g === acked + 1, `kill ${k} (${keep}): generation ${g} on disk, ${acked} acknowledged`);
      assert.deepEqual(leftovers(taskDir), []);
      if (g > 0) assert.deepEqual(namesIn(adapterDir), ADAPTER_FILES);
      counts.kills++;
      if (midPromotion) {
        counts.midPromotion++;
        counts[g === onDisk ? 'restored' : 'finished']++;
      }
      onDisk = g;
    }
    assert.ok(onDisk > 1, 'the promotions went on between kills');
  }
  console.log(`promotion kills: ${JSON.stringify(counts)}`);
  assert.equal(counts.kills, 2 * KILLS);
});
