// The names of the files Gemma Tune reads and writes, in one place: a task folder's (.gemma/tasks/<task>/),
// a PEFT adapter folder's and a training run's. Pure: imported by the engine, the store, the host and the CLI.
// src/job/train.py writes some of them too (its constants are held to these by test/unit/job-export.test.ts).

/** A task's definition and settings. */
export const TASK_FILE = 'task.json';
/** A task's labeled examples, TRL's conversational format. */
export const EXAMPLES_FILE = 'examples.jsonl';
/** A task's training records (store/metricsLog.ts). */
export const METRICS_FILE = 'metrics.jsonl';
/** A task's trained adapter folder. */
export const ADAPTER_DIR = 'adapter';

/** PEFT's adapter weights and configuration. */
export const ADAPTER_WEIGHTS_FILE = 'adapter_model.safetensors';
export const ADAPTER_CONFIG_FILE = 'adapter_config.json';
/** A training job's note beside PEFT's files: the base it trained on. */
export const ADAPTER_INFO_FILE = 'gemma_tune.json';

/** The trainer's resumable checkpoint, in the adapter folder it writes (engine/train/checkpoint.ts). */
export const CHECKPOINT_FILE = 'trainer_state.safetensors';
/** The host's note on a staged run: its settings and step count (store/adapterStage.ts). */
export const RUN_MARKER_FILE = 'run.json';
