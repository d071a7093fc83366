// The engine's seeded generator lives in ../rng.ts; trainer.ts and benchTrain.ts still import it from here.
export { Rng, shuffled } from '../rng';
