import * as fs from 'node:fs';
import { readDemoTask } from './src/cli/demo/demoTask';
import { writeDemoModel } from './src/cli/demo/modelLocation';
import { runDemoTask } from './src/cli/demo/runDemo';
const [task, lr, epochs, rank, prec, vs] = process.argv.slice(2);
(async () => {
  const t0 = performance.now();
  if (!fs.existsSync('/tmp/jdemo/model/config.json')) writeDemoModel('/tmp/jdemo/model', 7);
  console.log('model', ((performance.now() - t0) / 1000).toFixed(1), 's');
  const r = await runDemoTask(readDemoTask(`examples/${task}`), '/tmp/jdemo/model', '/tmp/jdemo/out-' + task, {
    epochs: +epochs, lr: +lr, schedule: 'linear', warmupSteps: 0, weightDecay: 0, maxGradNorm: 1, rank: +rank, alpha: 2 * +rank,
    targets: ['q', 'k', 'v', 'o', 'gate', 'up', 'down'], batchSize: 4, valSplit: +(vs ?? 0.2), patience: 0, seed: 42, precision: prec as any, threads: 2,
  }, (e) => { if (e.type === 'eval') console.log('eval', e.step, e.valLoss.toFixed(3), e.metric); });
  for (const row of r.rows) console.log(row.expected.padEnd(40), row.before.padEnd(40), row.after);
  const { rows, ...rest } = r; console.log(rest, 'total', ((performance.now() - t0) / 1000).toFixed(1));
})();
