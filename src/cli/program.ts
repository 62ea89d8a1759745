// volcli's root: the global options, the command tree put together from one file per noun
// (commands/: tenant, volume, runtime, snapshot, backup, mount, host, token, operation, audit), error reporting and the runner.
// `run(argv, io)` returns the exit code instead of exiting, so that tests can drive it in-process;
// main.ts wires it to the process. What every command gets is context.ts; argument checks args.ts.
//
// Exit codes: 0 ok, 1 error (the master or etcd refused, or could not be reached), 2 usage (unknown
// command or option, missing or malformed argument). Errors go to stderr as one line that says
// what to do; with --json as one JSON object {code, message, field?}.

import { Command, CommanderError, Option } from 'commander';
import { DEFAULT_MASTER } from '../api/client.js';
import { ApiError } from '../api/errors.js';
import { VERSION } from '../api/version.js';
import { addEtcdSecurityOptions } from '../common/flags.js';
import { PolicyError } from '../policy/errors.js';
import { StateUnavailableError } from '../state/kv.js';
import { DEFAULT_PREFIX } from '../state/keys.js';
import { UsageError, collect } from './args.js';
import { backupCommands } from './commands/backup.js';
import { auditCommands } from './commands/audit.js';
import { hostCommands } from './commands/host.js';
import { operationCommands } from './commands/operation.js';
import { mountCommands } from './commands/mount.js';
import { runtimeCommands } from './commands/runtime.js';
import { snapshotCommands } from './commands/snapshot.js';
import { tenantCommands } from './commands/tenant.js';
import { tokenCommands } from './commands/token.js';
import { volumeCommands } from './commands/volume.js';
import { Context, type Act, type CliIO, type GlobalOptions } from './context.js';

export { UsageError } from './args.js';
export type { CliIO } from './context.js';

function seconds(value: string): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0) throw new UsageError(`--timeout must be a positive number of seconds, got ${JSON.stringify(value)}`);
  return n;
}

export function buildProgram(io: CliIO, holder: { ctx: Context | null }): Command {
  const program = new Command('volcli');
  const act: Act =
    (fn) =>
    async (...args: unknown[]) => {
      const command = args[args.length - 1] as Command;
      const ctx = new Context(io, command.optsWithGlobals() as GlobalOptions);
      holder.ctx = ctx;
      const positional = args.slice(0, -2).flatMap((a) => (Array.isArray(a) ? a : [a])).filter((a): a is string => typeof a === 'string');
      await fn(ctx, ...positional);
    };

  program
    .description('volplugin control: tenants, volumes and mounts, through volmaster (or etcd with --etcd)')
    .version(VERSION, '--version')
    .addOption(new Option('--master <host:port>', 'volmaster address (env VOLPLUGIN_MASTER)').default(io.env.VOLPLUGIN_MASTER || DEFAULT_MASTER))
    .addOption(new Option('--etcd <url>', 'read and write records in etcd directly, not through volmaster (repeatable)').argParser(collect))
    .addOption(new Option('--prefix <key>', 'etcd key prefix (with --etcd)').default(DEFAULT_PREFIX))
    .addOption(new Option('--token-file <path>', 'file (mode 600) holding your token for volmaster (env VOLPLUGIN_TOKEN_FILE)').default(io.env.VOLPLUGIN_TOKEN_FILE || undefined))
    .addOption(new Option('--tls-ca <path>', "CA that signed volmaster's TLS certificate; the address then defaults to https (env VOLPLUGIN_TLS_CA)").default(io.env.VOLPLUGIN_TLS_CA || undefined))
    .addOption(new Option('--timeout <seconds>', 'give up on volmaster or etcd after this long').default(30).argParser(seconds))
    .option('--json', 'machine-readable output (errors too, on stderr)', false)
    .addHelpText('after', '\nRun "volcli help COMMAND" or "volcli COMMAND help SUBCOMMAND" for details. Exit codes: 0 ok, 1 error, 2 usage.');
  addEtcdSecurityOptions(program, io.env); // TLS and user for --etcd

  // In this order in `volcli help`.
  tenantCommands(program, act);
  const volume = volumeCommands(program, act);
  runtimeCommands(volume, act);
  snapshotCommands(volume, act);
  backupCommands(volume, act);
  mountCommands(program, act);
  hostCommands(program, act);
  tokenCommands(program, act);
  operationCommands(program, act);
  auditCommands(program, act);

  // Every command: errors through our exit codes, one-line messages, output through `io`.
  const configure = (cmd: Command, path: string) => {
    cmd.exitOverride();
    cmd.showSuggestionAfterError(true);
    cmd.configureOutput({
      writeOut: io.stdout,
      writeErr: io.stderr,
      outputError: (text, write) => {
        const message = text.replace(/^error: /, '').replace(/\s*\n\s*/g, '; ').replace(/[.;\s]+$/, '');
        write(`volcli: ${message}; see ${path} --help\n`);
      },
    });
    for (const sub of cmd.commands) configure(sub, `${path} ${sub.name()}`);
  };
  configure(program, 'volcli');
  return program;
}

export interface ErrorReport {
  code: string;
  message: string;
  field?: string;
}

/** The message and code volcli reports for an error. */
export function describeError(err: unknown): ErrorReport {
  if (err instanceof ApiError || err instanceof PolicyError) {
    return err.field === undefined ? { code: err.code, message: err.message } : { code: err.code, message: err.message, field: err.field };
  }
  if (err instanceof StateUnavailableError) {
    return { code: 'STATE_UNAVAILABLE', message: err.message };
  }
  if (err instanceof UsageError) return { code: 'USAGE', message: err.message };
  const e = err as { code?: unknown; message?: unknown };
  return { code: typeof e?.code === 'string' ? e.code : 'ERROR', message: typeof e?.message === 'string' ? e.message : String(err) };
}

/**
 * `volcli help X` or `volcli CMD help X` where X is no command: commander would print the whole
 * help; a one-line usage error says more. Returns that line, or null when commander should go on.
 */
function unknownHelpTopic(program: Command, argv: string[]): string | null {
  let cmd = program;
  let path = 'volcli';
  for (let i = 0; i < argv.length; i++) {
    const word = argv[i]!;
    if (word.startsWith('-')) {
      // Skip an option's value (`--master HOST`), looking the option up on every level so far.
      const takesValue = [cmd, program].some((c) => c.options.some((o) => (o.long === word || o.short === word) && (o.required || o.optional)));
      if (takesValue) i++;
      continue;
    }
    if (word === 'help') {
      const topic = argv[i + 1];
      const known = topic === undefined || topic.startsWith('-') || cmd.commands.some((c) => c.name() === topic || c.aliases().includes(topic));
      return known ? null : `volcli: unknown command '${topic}'; see ${path} --help\n`;
    }
    const next = cmd.commands.find((c) => c.name() === word);
    if (!next) return null;
    cmd = next;
    path += ` ${next.name()}`;
  }
  return null;
}

/** Runs volcli with `argv` (without node and the script); returns the exit code. */
export async function run(argv: string[], io: CliIO): Promise<number> {
  const holder: { ctx: Context | null } = { ctx: null };
  const program = buildProgram(io, holder);
  const json = argv.includes('--json');
  const unknownTopic = unknownHelpTopic(program, argv);
  if (unknownTopic) {
    io.stderr(unknownTopic);
    return 2;
  }
  try {
    await program.parseAsync(argv, { from: 'user' });
    return 0;
  } catch (err) {
    if (err instanceof CommanderError) {
      if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version') return 0;
      if (err.code === 'commander.help') return err.exitCode === 0 ? 0 : 2;
      return 2; // commander already printed the one-line message
    }
    const report = describeError(err);
    const line = report.message.replace(/\s*\n\s*/g, '; ');
    io.stderr(json ? `${JSON.stringify({ ...report, message: line })}\n` : `volcli: ${line}\n`);
    return err instanceof UsageError ? 2 : 1;
  } finally {
    await holder.ctx?.close();
  }
}
