// `gemma-tune tokenize`: token ids exactly as Hugging Face gives them, for checking the tokenizer and the
// chat template against transformers: --text without special tokens, --chat with apply_chat_template's
// rendering (BOS, turns, generation prompt).

import * as fs from 'node:fs';
import * as path from 'node:path';
import type { CliCommand } from '../command';
import { parseFlags, UsageError } from '../args';
import { createTokenizer, type Tokenizer } from '../../engine/model/tokenizer';
import { tokenizerForModel } from '../../engine/model/tokenizerForModel';
import { encodeChatPrompt, parseChatMessages } from '../../engine/model/chatTemplate';
import { errorText } from '../../common/quote';


function readChat(file: string): unknown {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new Error(`${file}: cannot read (${(e as NodeJS.ErrnoException).code ?? String(e)})`, { cause: e });
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new Error(`${file}: not valid JSON (${errorText(e)})`, { cause: e });
  }
}

export const tokenizeCommand: CliCommand = {
  name: 'tokenize',
  usage: 'gemma-tune tokenize (--model PATH | --tokenizer tokenizer.json) (--text TEXT | --chat FILE.json)',
  summary: 'Print {"ids":[…]}: --text without special tokens, --chat as the Gemma chat template with the generation prompt.',
  async run(argv) {
    const p = parseFlags(argv, { values: ['model', 'tokenizer', 'text', 'chat'] });
    const model = p.values.get('model');
    const tokenizerFile = p.values.get('tokenizer');
    if ((model === undefined) === (tokenizerFile === undefined)) throw new UsageError('give exactly one of --model and --tokenizer');
    const text = p.values.get('text');
    const chat = p.values.get('chat');
    if ((text === undefined) === (chat === undefined)) throw new UsageError('give exactly one of --text and --chat');
    // Read the chat first so a bad file fails before the (slower) tokenizer load.
    const messages = chat === undefined ? null : parseChatMessages(readChat(chat), chat);
    const tok: Tokenizer = model !== undefined ? tokenizerForModel(model) : createTokenizer({ kind: 'tokenizer.json', path: path.resolve(tokenizerFile!) });
    const ids = messages ? encodeChatPrompt(tok, messages) : tok.encode(text!);
    process.stdout.write(JSON.stringify({ ids }) + '\n');
  },
};
