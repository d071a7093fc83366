// Where the tests find the data kept outside the repository: `../shared` beside its root, as in every
// checkout and in CI. A test that needs a missing file fails with one line naming the path it expected.
import * as fs from 'node:fs';
import * as path from 'node:path';

/** `<repository>/../shared`. */
export const SHARED_DIR = path.resolve(__dirname, '../../../shared');

/** A path under ../shared (e.g. `sharedPath('seed')`); throws one line when it is not there. */
export function sharedPath(relative: string): string {
  const p = path.join(SHARED_DIR, relative);
  if (fs.existsSync(p)) return p;
  throw new Error(fs.existsSync(SHARED_DIR)
    ? `${p} is missing: ../shared (${SHARED_DIR}) lacks ${relative}`
    : `../shared is missing: the tests read fixtures from ${SHARED_DIR}, beside the repository`);
}

/** A Hugging Face fixture under ../shared/fixtures/hf-gemma3 (e.g. `hfFixture('tiny')`, `hfFixture('tiny/config.json')`). */
export function hfFixture(name: string): string {
  return sharedPath(`fixtures/hf-gemma3/${name}`);
}
