// The panel page's edit buffer and what it derives after each edit (issue 12, item 1): the header's
// counts and Train follow every kind of edit at once, an older ack does not clear a newer edit, the
// line under a just-labeled example stops offering Accept, and a dropdown opens where it fits.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { countExamples, NotReadyError, trainBlocker } from '../../src/panel/trainReadiness';
import type { ExampleView } from '../../src/protocol/webview';
import { plural } from '../../src/plural';
import { countsText, EditBuffer, suggestionStatus } from '../../webview/editBuffer';
import { dropdownHeight, opensAbove } from '../../webview/format';

const host = (): ExampleView[] => [
  { id: 'ex-1', input: 'crash on save', output: '', heldOut: false },
  { id: 'ex-2', input: 'dark mode please', output: '', heldOut: false },
  { id: 'ex-3', input: 'how to export?', output: '', heldOut: false },
];

test('every kind of edit changes the counts and Train at once, before the host answers', () => {
  const b = new EditBuffer();
  const examples = host();
  const counts = () => countExamples(b.merge(examples));
  assert.equal(countsText(counts()), '3 examples, 0 labeled, 0 held out');
  assert.equal(trainBlocker(counts()), 'Label at least one example to train.');

  b.edit('ex-1', { output: 'bug' }); // a label picked in the dropdown (or accepted)
  assert.equal(countsText(counts()), '3 examples, 1 labeled, 0 held out');
  assert.equal(trainBlocker(counts()), null, 'Train is enabled by the label alone');

  b.edit('ex-1', { heldOut: true }); // held out
  assert.equal(countsText(counts()), '3 examples, 1 labeled, 1 held out');
  assert.match(trainBlocker(counts()) ?? '', /Every labeled example is held out/);

  b.edit('ex-2', { output: 'a typed answer' }); // a typed answer, still unsent
  assert.deepEqual(counts(), { total: 3, labeled: 2, heldOut: 1, trainable: 1 });
  assert.equal(trainBlocker(counts()), null);

  b.edit('ex-2', { output: '   ' }); // typed away again: white space is no label
  assert.equal(counts().labeled, 1);

  // A removed example leaves the counts with its row.
  b.drop('ex-1');
  const left = b.merge(examples.filter((e) => e.id !== 'ex-1'));
  assert.equal(countsText(countExamples(left)), '2 examples, 0 labeled, 0 held out');
});

test('an ack clears an example\'s edits only when it answers the latest send', () => {
  const b = new EditBuffer();
  b.edit('ex-1', { output: 'bug' });
  b.sent('ex-1', 1);
  b.edit('ex-1', { output: 'feature' }); // changed again before the first ack
  b.sent('ex-1', 2);
  assert.equal(b.confirmed(1, 'ex-1'), false, 'the older ack leaves the newer edit');
  assert.deepEqual(b.pending('ex-1'), { output: 'feature' });
  assert.equal(b.merge(host())[0].output, 'feature');
  assert.equal(b.confirmed(2, 'ex-1'), true);
  assert.equal(b.pending('ex-1'), undefined);
  assert.deepEqual(b.ids(), []);
});

test('edits a torn-down page saved come back and merge field by field', () => {
  const b = new EditBuffer({ 'ex-2': { input: 'dark mode, please!' } });
  b.edit('ex-2', { heldOut: true });
  assert.deepEqual(b.snapshot(), { 'ex-2': { input: 'dark mode, please!', heldOut: true } });
  const examples = host();
  assert.deepEqual(b.merge(examples)[1], { id: 'ex-2', input: 'dark mode, please!', output: '', heldOut: true });
  assert.equal(b.merge(examples)[0], examples[0], 'untouched examples pass through as they are');
});

test('the line under the expected output offers Accept only while the example has no label', () => {
  const s = { id: 'ex-1', output: 'feature', probability: 0.66 };
  assert.equal(suggestionStatus({ output: '' }, s, false), 'open');
  assert.equal(suggestionStatus({ output: 'feature' }, s, false), 'agrees');
  assert.equal(suggestionStatus({ output: ' feature\n' }, s, false), 'agrees');
  assert.equal(suggestionStatus({ output: 'bug' }, s, false), 'differs', 'the user\'s label stands: no Accept over it');
  assert.equal(suggestionStatus({ output: '' }, undefined, true), 'waiting');
  assert.equal(suggestionStatus({ output: 'bug' }, undefined, false), 'none');
});

test('counts read in words, one example is not "1 examples"', () => {
  assert.equal(plural(1, 'example'), '1 example');
  assert.equal(plural(0, 'example'), '0 examples');
  assert.equal(countsText({ total: 1, labeled: 1, heldOut: 0, trainable: 1 }), '1 example, 1 labeled, 0 held out');
  assert.equal(new NotReadyError('x').name, 'NotReadyError');
});

test('a dropdown near the bottom edge opens above its field, elsewhere below', () => {
  const list = dropdownHeight(4); // "— choose a label —" and three labels
  assert.equal(list, 4 * 22 + 4);
  assert.equal(dropdownHeight(40), 10 * 22 + 4, 'at most ten options show at once');
  assert.equal(opensAbove(100, 126, 760, list), false, 'room below');
  assert.equal(opensAbove(700, 726, 760, list), true, 'a low row: above');
  assert.equal(opensAbove(20, 46, 100, list), false, 'no room either side: the larger side (below)');
});
