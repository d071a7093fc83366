// The small files of a training job: the recipe's type (job.json), requirements, accelerate
// configurations, README. Pure.

import type { FullHyperparameters } from '../engine/train/defaults';

export const JOB_FORMAT = 'gemma-tune-job';

/** What train.py reads from job.json. */
export interface JobRecipe {
  format: typeof JOB_FORMAT;
  version: 1;
  task: { name: string; kind: string };
  base: string;
  hyperparameters: FullHyperparameters;
  maxTokens: number;
  evalEvery: number;
  exportedAt: string;
}

/**
 * What train.py imports, in ranges it was run with (torch 2.11, transformers 5.17, peft 0.18+, accelerate
 * 1.15 on an H100); TRL is not needed.
 */
export const REQUIREMENTS = [
  '# Gemma Tune training job: pip install -r requirements.txt',
  'torch>=2.4,<3',
  'transformers>=5.0,<6',
  'peft>=0.17,<1',
  'accelerate>=1.0,<2',
  'tokenizers>=0.21,<1',
  'safetensors>=0.4,<1',
  'huggingface_hub>=0.30,<2',
  'numpy>=1.24,<3',
  '',
].join('\n');

/** accelerate config files by name: one GPU, all GPUs of one machine, several machines. */
export function accelerateConfigs(): Record<string, string> {
  // mixed_precision 'no': train.py chooses the base weights' dtype itself (--dtype) and keeps LoRA in float32.
  const common = ['compute_environment: LOCAL_MACHINE', 'mixed_precision: "no"', 'downcast_bf16: "no"', 'use_cpu: false'];
  return {
    '1gpu.yaml': ['# One GPU: accelerate launch --config_file accelerate/1gpu.yaml train.py', ...common,
      'distributed_type: "NO"', 'num_machines: 1', 'num_processes: 1', 'gpu_ids: "0"', ''].join('\n'),
    'multi-gpu.yaml': ['# Every GPU of this machine, one process each (DDP-style: each step\'s examples are split and the',
      '# gradients added, so the steps are the one-GPU steps). Set num_processes to the number of GPUs, or',
      '# override it: accelerate launch --config_file accelerate/multi-gpu.yaml --num_processes 8 train.py', ...common,
      'distributed_type: MULTI_GPU', 'num_machines: 1', 'num_processes: 8', 'gpu_ids: all', 'machine_rank: 0', ''].join('\n'),
    'multi-node.yaml': ['# Two machines of 8 GPUs: run the same command on each, with machine_rank 0 on the one at',
      '# main_process_ip and 1 on the other (or --machine_rank 1). num_processes counts every GPU of every machine.', ...common,
      'distributed_type: MULTI_GPU', 'num_machines: 2', 'num_processes: 16', 'machine_rank: 0', 'main_process_ip: 10.0.0.1',
      'main_process_port: 29500', 'rdzv_backend: static', 'same_network: true', 'gpu_ids: all', ''].join('\n'),
  };
}

/** The job's README: what it is, how to run it, how its adapter comes back. */
export function jobReadme(r: JobRecipe, examples: number, heldOut: number): string {
  const hp = r.hyperparameters;
  const split = heldOut > 0 ? `${heldOut} held out as the task marks them` : hp.valSplit > 0 ? `${Math.round(hp.valSplit * 100)}% held out by seed ${hp.seed} (at 10 examples or more)` : 'none held out';
  return `# Training job: ${r.task.name}

Exported by Gemma Tune on ${r.exportedAt}. It trains the task's LoRA adapter with Hugging Face transformers +
PEFT under \`accelerate\`, on one GPU, all GPUs of a machine, or several machines, with the extension's own
recipe, step for step; the adapter then comes back into the editor with **Gemma: Import adapter…**.

| file | what |
| --- | --- |
| \`train.py\` | the training script (its header says what it reproduces and where) |
| \`job.json\` | the recipe: base model, hyperparameters, cut-off length |
| \`examples.jsonl\` | the ${examples} labeled examples in TRL's conversational format (${split}) |
| \`requirements.txt\` | the Python packages (TRL is not needed) |
| \`accelerate/\` | configurations for 1 GPU, the GPUs of one machine, and two machines |

Recipe: base \`${r.base}\`, LoRA r ${hp.rank} / alpha ${hp.alpha} on ${hp.targets.join(', ')}, dropout 0;
AdamW lr ${hp.learningRate} (${hp.schedule}, ${hp.warmupSteps} warm-up steps, weight decay ${hp.weightDecay}),
clipping at ${hp.maxGradNorm}, ${hp.epochs} epochs of steps of ${hp.batchSize} × ${hp.gradAccum} examples, early
stopping after ${hp.patience} evaluations without improvement, examples cut at ${r.maxTokens} tokens.

## Run

\`\`\`bash
pip install -r requirements.txt
accelerate launch --config_file accelerate/1gpu.yaml train.py                       # one GPU
accelerate launch --config_file accelerate/multi-gpu.yaml --num_processes 4 train.py  # four GPUs
\`\`\`

\`--base\` trains on another checkpoint (a Hugging Face id or a local folder; gated models need
\`huggingface-cli login\` first). \`--dtype float32\` keeps the base weights in float32 (the default is bfloat16 on
GPUs that have it; the LoRA weights and the loss are float32 either way). \`--out DIR\` (default \`out/\`),
\`--epochs N\`, \`--max-steps N\`, \`--max-batch-tokens N\` (memory per forward pass; it does not change the steps).
To compare with a run in the editor: the same seed gives the same initial adapter and data order;
\`--init-adapter DIR\` starts from a given adapter, \`--no-shuffle\` or \`--order FILE\` (one list of example ids
per epoch) fixes the order, and \`--dump-tokens FILE\` writes the tokens and labels trained on.
\`python train.py --help\` lists everything.

Output: \`out/adapter/\` (PEFT's adapter_config.json and adapter_model.safetensors, the best evaluation's, and
gemma_tune.json naming the base), \`out/metrics.jsonl\` (the loss curves, in the extension's format) and
\`out/log.jsonl\` (every step with learning rate, gradient norm and tokens/s).

## Back in the editor

Copy \`out/\` to the machine with the editor, then run **Gemma: Import adapter…** and pick that folder, or
\`gemma-tune import-adapter --adapter out --task .gemma/tasks/<task> --model <model>\`. The adapter is checked
against the model the task runs on (shapes, the base's size, finite values) before it replaces the task's
adapter, and the training panel draws the job's loss curves.
`;
}
