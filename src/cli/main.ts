// `gemma-tune`: the command line on the same engine as the extension, for batch work and CI.
// Exit code 0 on success; on bad input, 1 with one line "gemma-tune: <reason>" on stderr; 2 on usage errors.

import type { CliCommand } from './command';
import { UsageError } from './args';
import { makeModelCommand } from './commands/makeModel';
import { logitsCommand } from './commands/logits';
import { tokenizeCommand } from './commands/tokenize';
import { generateCommand } from './commands/generate';
import { classifyCommand } from './commands/classify';
import { benchCommand } from './commands/bench';
import { trainCommand } from './commands/train';
import { exportAdapterCommand } from './commands/exportAdapter';
import { demoCommand } from './commands/demo';
import { exportJobCommand } from './commands/exportJob';
import { importAdapterCommand } from './commands/importAdapter';

const commands: CliCommand[] = [makeModelCommand, logitsCommand, tokenizeCommand, generateCommand, classifyCommand, benchCommand, trainCommand, exportAdapterCommand, exportJobCommand, importAdapterCommand, demoCommand];

function help(): string {
  const lines = ['usage: gemma-tune <command> [options]', ''];
  for (const c of commands) lines.push(`  ${c.usage}`, `      ${c.summary}`);
  return lines.join('\n');
}

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === 'help' || name === '--help' || name === '-h') {
    console.log(help());
    return name ? 0 : 2;
  }
  const cmd = commands.find((c) => c.name === name);
  if (!cmd) {
    console.error(`gemma-tune: unknown command "${name}" (try gemma-tune help)`);
    return 2;
  }
  if (rest.includes('--help') || rest.includes('-h')) {
    console.log(`usage: ${cmd.usage}\n\n${cmd.summary}`);
    return 0;
  }
  try {
    await cmd.run(rest);
    return 0;
  } catch (e) {
    if (e instanceof UsageError) {
      console.error(`gemma-tune ${name}: ${e.message}\nusage: ${cmd.usage}`);
      return 2;
    }
    const msg = e instanceof Error ? e.message : String(e);
    console.error(`gemma-tune ${name}: ${msg.split('\n')[0]}`);
    if (process.env.GEMMA_TUNE_DEBUG && e instanceof Error) console.error(e.stack);
    return 1;
  }
}

main(process.argv.slice(2)).then((code) => {
  process.exitCode = code;
});
