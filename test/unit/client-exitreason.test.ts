// How the host words the end of an engine process (exitReason.ts), from what the operating system and
// the engine's last stderr lines say, and the engine's command line (engineArgs / parseEngineArgs).

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { clean, describeExit } from '../../src/client/exitReason';
import { ENGINE_FATAL_PREFIX, engineArgs, parseEngineArgs } from '../../src/protocol/engine';

const exit = (o: Partial<Parameters<typeof describeExit>[0]>) => describeExit({ code: null, signal: null, stderr: [], ...o });

test('signals and exit codes become words', () => {
  assert.equal(exit({ signal: 'SIGKILL' }), 'the engine was killed (SIGKILL), by the system when memory ran out or by another process');
  assert.equal(exit({ signal: 'SIGSEGV' }), 'the engine crashed (segmentation fault, SIGSEGV)');
  assert.equal(exit({ signal: 'SIGUSR2' }), 'the engine was ended by SIGUSR2');
  assert.equal(exit({ code: 3 }), 'the engine exited with code 3');
  assert.equal(exit({ code: 0 }), 'the engine exited although nothing asked it to (exit code 0)');
  assert.equal(exit({ code: 137 }), 'the engine was killed (exit code 137, SIGKILL), by the system when memory ran out or by another process');
  // Windows reports a crash as an NTSTATUS exit code, signed or not.
  assert.equal(exit({ code: 0xc0000005 }), 'the engine crashed (access violation)');
  assert.equal(exit({ code: 0xc0000409 | 0 }), 'the engine aborted (fail-fast, 0xC0000409)');
  assert.equal(exit({ code: 0xc0000135 }), 'the engine exited with code 0xC0000135');
});

test('the last words on stderr name the cause: V8 fatal errors, C++ aborts, the watchdog', () => {
  const gcs = ['<--- Last few GCs --->', '[1:0x1]  3486 ms: Scavenge 7.4 (9.8) -> 7.4 (10.3) MB', '<--- JS stacktrace --->'];
  assert.equal(
    exit({ signal: 'SIGABRT', heapMB: 2048, stderr: [...gcs, 'FATAL ERROR: Reached heap limit Allocation failed - JavaScript heap out of memory', ' 1: 0xb78db3 node::OOMErrorHandler'] }),
    'the engine ran out of JavaScript heap memory (its limit is 2048 MB)',
  );
  assert.equal(
    exit({ signal: 'SIGABRT', stderr: ['', '#', '# Fatal error in , line 0', '# Fatal JavaScript invalid size error 169220804', '#', '#FailureMessage Object: 0x7ffd'] }),
    'the engine hit a V8 fatal error: Fatal JavaScript invalid size error 169220804',
  );
  assert.equal(
    exit({ signal: 'SIGABRT', stderr: ['FATAL ERROR: invalid table size Allocation failed - JavaScript heap out of memory'] }),
    'the engine hit a V8 fatal error: invalid table size Allocation failed - JavaScript heap out of memory',
  );
  assert.equal(
    exit({ signal: 'SIGABRT', stderr: ["terminate called after throwing an instance of 'Ort::Exception'", '  what():  bad allocation'] }),
    "the engine aborted (SIGABRT): terminate called after throwing an instance of 'Ort::Exception' what():  bad allocation",
  );
  assert.equal(
    exit({ signal: 'SIGKILL', stderr: ['some warning', `${ENGINE_FATAL_PREFIX}the engine used 2100 MB of memory, over its cap of 2048 MB, and was stopped`] }),
    'the engine used 2100 MB of memory, over its cap of 2048 MB, and was stopped',
  );
  assert.equal(exit({ code: 1, stderr: ['Error: Cannot find module onnxruntime-node'] }), 'the engine exited with code 1: Error: Cannot find module onnxruntime-node');
  // A SIGKILL says who may have sent it; an unrelated warning before it is not the cause.
  assert.equal(exit({ signal: 'SIGKILL', stderr: ['W onnxruntime: some failure to fold'] }), 'the engine was killed (SIGKILL), by the system when memory ran out or by another process');
});

test('what stderr carries is shown printable and short', () => {
  assert.equal(clean('bad \u001b[2J name\u0007'), 'bad \\x1b[2J name\\x07');
  const long = clean('x'.repeat(1000));
  assert.equal(long.length, 240);
  assert.ok(long.endsWith('…'));
});

test('the engine command line round-trips, and anything else is refused', () => {
  assert.deepEqual(parseEngineArgs(engineArgs({ threads: 3, priority: 10, memoryCapMB: 2048 })), { threads: 3, priority: 10, memoryCapMB: 2048 });
  assert.throws(() => parseEngineArgs(['--priority=-5']), /--priority=-5: expected an integer in \[0, 19\]/);
  assert.deepEqual(parseEngineArgs(engineArgs({})), {});
  // A folder path may hold '=': everything after the first one is the value.
  const cache = '/home/a=b/.config/Code/User/globalStorage/gemma-tune.gemma-tune/converted';
  assert.deepEqual(parseEngineArgs(engineArgs({ weightCache: cache })), { weightCache: cache });
  assert.throws(() => parseEngineArgs(['--weight-cache=relative/dir']), /unknown engine argument --weight-cache=relative\/dir/);
  assert.throws(() => parseEngineArgs(['--threads=0']), /--threads=0: expected an integer in \[1, 256\]/);
  assert.throws(() => parseEngineArgs(['--inspect']), /unknown engine argument --inspect/);
});
