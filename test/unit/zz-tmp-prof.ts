import * as fs from 'node:fs';
import { scanTokenizerJson } from '../../src/engine/model/tokenizerJsonScan';
import { createTokenizer } from '../../src/engine/model/tokenizer';
import { GEMMA3_TOKENIZER_JSON } from './tokenizer-helpers';
for (let k = 0; k < 2; k++) {
  let t0 = performance.now();
  const buf = fs.readFileSync(GEMMA3_TOKENIZER_JSON);
  const s = scanTokenizerJson(buf)!;
  console.log('scan', (performance.now() - t0).toFixed(0), s.vocab.size, s.mergePairs.length);
  t0 = performance.now();
  JSON.parse(buf.toString('utf8'));
  console.log('JSON.parse', (performance.now() - t0).toFixed(0));
  t0 = performance.now();
  createTokenizer({ kind: 'tokenizer.json', path: GEMMA3_TOKENIZER_JSON });
  console.log('create', (performance.now() - t0).toFixed(0));
}
