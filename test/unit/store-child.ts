// A second process for the cross-process store tests (bundled and spawned by them): it does one job on
// a task store and reports each step it finished on stdout, one line each, so the parent knows what was
// acknowledged before it kills the process.
//
//   add ROOT TASK N PREFIX [PAUSE_MS] [unlabeled]
//                                        adds N examples one at a time ("added <input>" after each),
//                                        labeled bug / feature in turn unless "unlabeled"
//   hold-training ROOT TASK              takes the training lock, prints "locked", waits to be killed
//   hold-lock FILE WHAT                  takes a bare lock file, prints "locked", waits to be killed
//   promote-loop ROOT TASK KEEP FIRST    under the training lock, stages adapters whose every value is the
//                                        generation number (FIRST, FIRST+1, …) and promotes each ("promoted <g>"),
//                                        with KEEP "keep" as a cancelled run does (the run state stays staged)
//   promote-and-die ROOT TASK KEEP G N   under the training lock, stages generation G, runs the first N steps
//                                        of its promotion and SIGKILLs itself: a crash right after step N
import * as fs from 'node:fs';
import * as path from 'node:path';
import { promoteStaged, promotionPlan, stagingDir } from '../../src/store/adapterStage';
import { acquireLock } from '../../src/store/fileLock';
import { TaskStore } from '../../src/store/taskStore';
import { adapterOfGeneration } from './store-helpers';

const [job, ...args] = process.argv.slice(2);
const say = (line: string): boolean => process.stdout.write(`${line}\n`);
const forever = (): Promise<never> => new Promise(() => setInterval(() => undefined, 1 << 30));

async function main(): Promise<void> {
  switch (job) {
    case 'add': {
      const [root, id, n, prefix, pause = '0', labels] = args;
      const store = new TaskStore(root, { who: `store-child add ${prefix}` });
      for (let i = 0; i < Number(n); i++) {
        const input = `${prefix}-${i}`;
        await store.addExamples(id, [{ input, output: labels === 'unlabeled' ? '' : i % 2 ? 'bug' : 'feature' }]);
        say(`added ${input}`);
        if (Number(pause) > 0) await new Promise((r) => setTimeout(r, Number(pause)));
      }
      return;
    }
    case 'hold-training': {
      const [root, id] = args;
      await new TaskStore(root, { who: 'store-child hold-training' }).lockTraining(id);
      say('locked');
      return forever();
    }
    case 'hold-lock': {
      const [file, what] = args;
      await acquireLock(file, { what, waitMs: 10_000, busyMessage: () => 'busy' });
      say('locked');
      return forever();
    }
    case 'promote-loop': {
      const [root, id, keep, first] = args;
      const store = new TaskStore(root, { who: 'store-child promote-loop' });
      await store.lockTraining(id);
      const adapterDir = store.adapterDir(id);
      for (let g = Number(first); ; g++) {
        adapterOfGeneration(stagingDir(adapterDir), g);
        if (keep === 'keep') fs.writeFileSync(path.join(stagingDir(adapterDir), 'run.json'), '{}');
        await promoteStaged(adapterDir, { keepRunState: keep === 'keep' });
        say(`promoted ${g}`);
      }
    }
    case 'promote-and-die': {
      const [root, id, keep, g, n] = args;
      const store = new TaskStore(root, { who: 'store-child promote-and-die' });
      await store.lockTraining(id);
      const adapterDir = store.adapterDir(id);
      adapterOfGeneration(stagingDir(adapterDir), Number(g));
      for (const step of promotionPlan(adapterDir, { keepRunState: keep === 'keep' }).slice(0, Number(n))) await step.run();
      process.kill(process.pid, 'SIGKILL');
      return forever();
    }
    default:
      throw new Error(`unknown job ${job} (${path.basename(__filename)})`);
  }
}

main().catch((e: Error) => {
  process.stderr.write(`store-child ${job}: ${e.message}\n`);
  process.exit(1);
});
