import { createTokenizer } from '../../src/engine/model/tokenizer';
import { GEMMA3_TOKENIZER_JSON } from './tokenizer-helpers';
for (let k = 0; k < 3; k++) {
  const t0 = performance.now();
  createTokenizer({ kind: 'tokenizer.json', path: GEMMA3_TOKENIZER_JSON });
  console.log('construct ms', (performance.now() - t0).toFixed(0));
}
