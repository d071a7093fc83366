// The pure pieces of running a task in the editor: probability and hover text, comment syntax,
// where answers are inserted, the language selector, and the engine requests built from a task.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { asComment, KNOWN_COMMENTS, parseLanguageConfiguration } from '../../src/codeActions/commentSyntax';
import { languageSelector } from '../../src/codeActions/languages';
import { indentLines, insertAbove, insertBelow, lastSelectedLine } from '../../src/codeActions/placement';
import { decorationText, formatProbability, hoverMarkdown, markdownCell } from '../../src/codeActions/resultFormat';
import { classifyParams, extractedText, extractRequest, FIELDS_MAX_TOKENS } from '../../src/client/taskRequests';
import { exampleToLine } from '../../src/store/examples';
import { newTaskConfig } from '../../src/store/task';

test('probabilities read as whole percents, with small and near-certain values kept distinct', () => {
  assert.equal(formatProbability(0.8734), '87%');
  assert.equal(formatProbability(1), '100%');
  assert.equal(formatProbability(0.032), '3.2%');
  assert.equal(formatProbability(0.0004), '<0.1%');
  assert.equal(formatProbability(0.99995), '>99.9%');
  assert.equal(formatProbability(0.997), '99.7%', 'not rounded up to 100%');
  assert.equal(formatProbability(Number.NaN), '?');
});

test('the inline text names the task, the label and its probability on one line', () => {
  assert.equal(decorationText('Bug or feature', 'bug', 0.87), 'Bug or feature: bug (87%)');
  assert.equal(decorationText('Multi\nline  name', 'a\tb', 0.5), 'Multi line name: a b (50%)');
});

test('the hover lists every label, most probable first and in bold, with Markdown escaped', () => {
  const md = hoverMarkdown('Triage', [
    { label: 'feature', probability: 0.1 },
    { label: 'bug', probability: 0.85 },
    { label: 'a|b', probability: 0.05 },
  ], 42.4);
  const rows = md.split('\n').filter((l) => l.startsWith('| ') && !l.startsWith('| label') && !l.startsWith('| ---'));
  assert.deepEqual(rows, ['| **bug** | 85% |', '| feature | 10% |', '| a\\|b | 5.0% |']);
  assert.match(md, /^\*\*Gemma · Triage\*\* in 42 ms/);
  assert.equal(markdownCell('[x](y)'), '\\[x\\]\\(y\\)');
});

test('comments use the line token, else the block tokens, else plain text, and stay one line', () => {
  assert.equal(asComment('T: bug (87%)', KNOWN_COMMENTS.typescript), '// T: bug (87%)');
  assert.equal(asComment('T: bug (87%)', KNOWN_COMMENTS.python), '# T: bug (87%)');
  assert.equal(asComment('T: bug (87%)', KNOWN_COMMENTS.html), '<!-- T: bug (87%) -->');
  assert.equal(asComment('T: bug (87%)', undefined), 'T: bug (87%)');
  assert.equal(asComment('a\nb', KNOWN_COMMENTS.sql), '-- a b');
  // A label holding the closing token cannot end the comment early.
  assert.equal(asComment('x */ y', KNOWN_COMMENTS.css), '/* x * / y */');
});

test('comment tokens are read from a language-configuration.json with comments and trailing commas', () => {
  const text = `{
    // Symbols used for commenting code
    "comments": { "lineComment": "--", "blockComment": ["{-", "-}"], },
    "brackets": [["(", ")"],],
  }`;
  assert.deepEqual(parseLanguageConfiguration(text), { line: '--', block: ['{-', '-}'] });
  assert.deepEqual(parseLanguageConfiguration('{"comments":{"lineComment":{"comment":"#","noIndent":true}}}'), { line: '#' });
  assert.equal(parseLanguageConfiguration('{"brackets":[]}'), undefined);
  assert.equal(parseLanguageConfiguration('{"comments":{"lineComment":""}}'), undefined);
  assert.equal(parseLanguageConfiguration('not json {'), undefined);
});

test('an extraction goes on a new line below the last selected line, indented like the first', () => {
  const lines = ['  first line', '  second', 'third'];
  const at = (l: number) => lines[l];
  assert.equal(lastSelectedLine({ line: 0, character: 2 }, { line: 2, character: 0 }), 1);
  assert.equal(lastSelectedLine({ line: 0, character: 2 }, { line: 0, character: 5 }), 0);
  assert.deepEqual(insertBelow({ line: 0, character: 2 }, { line: 2, character: 0 }, at, '{"a":"1"}', '\n'), {
    at: { line: 1, character: 8 },
    text: '\n  {"a":"1"}',
  });
  assert.deepEqual(insertBelow({ line: 0, character: 4 }, { line: 0, character: 9 }, at, 'x\ny', '\r\n'), {
    at: { line: 0, character: 12 },
    text: '\r\n  x\r\n  y',
  });
  assert.equal(indentLines('a\n\nb', '\t', '\n'), 'a\n\n\tb');
});

test('a classification comment goes on a new line above the selection with its indentation', () => {
  assert.deepEqual(insertAbove({ line: 3, character: 6 }, () => '\t\tcode();', '// T: bug (87%)', '\n'), {
    at: { line: 3, character: 0 },
    text: '\t\t// T: bug (87%)\n',
  });
});

test('the languages setting becomes a selector of saved and untitled documents', () => {
  assert.deepEqual(languageSelector(undefined).selector, [{ scheme: 'file' }, { scheme: 'untitled' }]);
  assert.deepEqual(languageSelector(['*', 'python']).selector, [{ scheme: 'file' }, { scheme: 'untitled' }]);
  assert.deepEqual(languageSelector(['markdown', 'markdown']).selector, [
    { language: 'markdown', scheme: 'file' },
    { language: 'markdown', scheme: 'untitled' },
  ]);
  const bad = languageSelector(['python', 3, 'no spaces allowed']);
  assert.deepEqual(bad.selector.map((f) => f.language), ['python', 'python']);
  assert.equal(bad.problems.length, 2);
  assert.equal(languageSelector('python').problems.length, 1);
});

const classifyTask = newTaskConfig({ name: 'Bug or feature', kind: 'classify', instruction: 'Is it a bug or a feature?', labels: ['bug', 'feature'] });
const fieldsTask = newTaskConfig({ name: 'Invoice', kind: 'extract', instruction: 'Extract the invoice fields.', fields: ['number', 'due'] });
const freeTask = newTaskConfig({ name: 'Summary', kind: 'extract', instruction: 'Summarise.' });

test('a classify request carries exactly the user message the examples were trained on', () => {
  const input = 'The app crashes when I click Save twice.';
  const params = classifyParams(classifyTask, input, 'task:x');
  const trained = exampleToLine(classifyTask, { id: 'ex-1', input, output: 'bug', heldOut: false });
  assert.deepEqual(params.messages, [trained.messages[0]]);
  assert.deepEqual(params.labels, ['bug', 'feature']);
  assert.equal(params.adapter, 'task:x');
  assert.equal('adapter' in classifyParams(classifyTask, input, undefined), false);
  assert.throws(() => classifyParams(fieldsTask, input, undefined), /not a classify task/);
});

test('an extract request asks for the task fields, or free text when it has none', () => {
  const req = extractRequest(fieldsTask, 'Invoice 4471 due 2026-12-01', 'a');
  assert.equal(req.method, 'extract');
  assert.ok(req.method === 'extract');
  assert.deepEqual(req.params.fields, [{ name: 'number' }, { name: 'due' }]);
  assert.equal(req.params.maxTokens, FIELDS_MAX_TOKENS);
  assert.equal(req.params.temperature, 0);
  assert.equal(extractRequest(freeTask, 'text', undefined).method, 'generate');
  assert.throws(() => extractRequest(classifyTask, 'x', undefined), /not an extract task/);
});

test('an extract answer is inserted as the task one-line JSON, fields in task order', () => {
  const text = extractedText(fieldsTask, { text: '', tokens: [], values: [{ name: 'due', value: '2026-12-01' }, { name: 'number', value: '4471' }] });
  assert.equal(text, '{"number":"4471","due":"2026-12-01"}');
  assert.equal(extractedText(freeTask, { text: '  A short summary.\n', tokens: [], finishReason: 'stop', promptTokens: 3 }), 'A short summary.');
});
