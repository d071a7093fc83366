// The shape of one `gemma-tune` subcommand; each lives in its own file under commands/.

export interface CliCommand {
  name: string;
  /** One line: the exact form, as `gemma-tune help` prints it. */
  usage: string;
  summary: string;
  run(argv: string[]): Promise<void>;
}
