// Temporary folders for the unit tests, removed when the tests are done, also when one fails.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, type TestContext } from 'node:test';

/**
 * A new folder `<tmp>/<prefix>XXXXXX`, removed with its contents when `t` ends, or without `t` when
 * the file's tests end: call it so at module scope (or in a `before`), because node:test attaches a
 * bare `after` to whichever test it takes to be running, which inside an async test body is not reliable.
 */
export function tempDir(prefix: string, t?: TestContext): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  const remove = (): void => fs.rmSync(dir, { recursive: true, force: true });
  if (t) t.after(remove);
  else after(remove);
  return dir;
}
