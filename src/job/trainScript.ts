// train.py travels as a file beside the bundles (esbuild.js copies it to dist/job/), not as a string in
// them, so it stays one readable, lintable Python file.

import { promises as fs } from 'node:fs';
import * as path from 'node:path';

/** Where train.py is: dist/job/ beside a bundle, or this source folder when run from source (tests, tsx). */
const CANDIDATES = [path.join(__dirname, 'job', 'train.py'), path.join(__dirname, 'train.py')];

/** The training job's script. */
export async function trainScript(): Promise<string> {
  for (const file of CANDIDATES) {
    try {
      return await fs.readFile(file, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    }
  }
  throw new Error(`train.py is missing from this installation (looked in ${CANDIDATES.join(', ')})`);
}
