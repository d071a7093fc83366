// Prompt rendering shared by the dataset writer, the trainer and the runner.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatFieldsOutput, matchLabel, parseFieldsOutput, renderMessages, renderUserMessage } from '../../src/store/prompt';

test('classify: instruction, labels, answer rule, then the input', () => {
  const msg = renderUserMessage({ kind: 'classify', instruction: 'Is this a bug report?', labels: ['bug', 'feature'] }, 'It crashes.');
  assert.equal(msg, 'Is this a bug report?\nLabels: bug, feature\nAnswer with one label only.\n\nInput:\nIt crashes.');
});

test('extract with fields names the keys; free-text extract and generate only carry the instruction', () => {
  assert.equal(
    renderUserMessage({ kind: 'extract', instruction: 'Pull out the person.', fields: ['name', 'age'] }, 'Ann, 31'),
    'Pull out the person.\nFields: name, age\nAnswer with a JSON object that has exactly these keys.\n\nInput:\nAnn, 31',
  );
  assert.equal(renderUserMessage({ kind: 'extract', instruction: 'Summarise.' }, 'x'), 'Summarise.\n\nInput:\nx');
  assert.equal(renderUserMessage({ kind: 'generate', instruction: '  ' }, 'x\ny'), 'Input:\nx\ny');
});

test('renderMessages: the expected output is the assistant message verbatim', () => {
  const m = renderMessages({ kind: 'generate', instruction: 'Make it formal.' }, 'hey', '  Dear Sir,\n');
  assert.deepEqual(m.map((x) => x.role), ['user', 'assistant']);
  assert.equal(m[1].content, '  Dear Sir,\n');
});

test('fields output round-trips in task order and tolerates non-string values', () => {
  const text = formatFieldsOutput(['b', 'a'], { a: '1', b: 'two' });
  assert.equal(text, '{"b":"two","a":"1"}');
  assert.deepEqual(parseFieldsOutput(['a', 'b', 'c'], text), { a: '1', b: 'two', c: '' });
  assert.deepEqual(parseFieldsOutput(['n'], '{"n": 3}'), { n: '3' });
  assert.equal(parseFieldsOutput(['a'], 'not json'), undefined);
  assert.equal(parseFieldsOutput(['a'], '[1]'), undefined);
});

test('matchLabel: exact, then loose, never ambiguous', () => {
  const labels = ['Bug', 'Feature request', 'bug!'];
  assert.equal(matchLabel(labels, 'Feature request'), 'Feature request');
  assert.equal(matchLabel(labels, ' feature REQUEST. '), 'Feature request');
  assert.equal(matchLabel(labels, 'bug'), undefined); // "Bug" and "bug!" both match loosely
  assert.equal(matchLabel(labels, 'Bug'), 'Bug');
  assert.equal(matchLabel(labels, 'question'), undefined);
});
