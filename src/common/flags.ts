// How every daemon reads its flags: commander parses, the component turns the options into its
// config, and anything wrong with them is one line on stderr and exit code 2 (usage), as for volcli.

import { CommanderError, InvalidArgumentError, type Command } from 'commander';

export function readFlags<T>(name: string, command: Command, toConfig: (options: never) => T): T {
  command.exitOverride((err) => {
    if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version') process.exit(0);
    process.exit(2); // commander has printed the message
  });
  command.parse(process.argv);
  try {
    return toConfig(command.opts() as never);
  } catch (err) {
    if (err instanceof InvalidArgumentError || err instanceof CommanderError) {
      process.stderr.write(`${name}: ${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
}
