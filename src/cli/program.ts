// volcli's command tree (commander 14) and its runner. `run(argv, io)` returns the exit code
// instead of exiting, so that tests can drive it in-process; main.ts wires it to the process.
//
// Exit codes: 0 ok, 1 error (the master or etcd refused, or could not be reached), 2 usage (unknown
// command or option, missing or malformed argument). Errors go to stderr as one line that says
// what to do; with --json as one JSON object {code, message, field?}.

import { Command, CommanderError, Option } from 'commander';
import { ApiClient, DEFAULT_MASTER, readTokenFile } from '../api/client.js';
import { ApiError } from '../api/errors.js';
import { VERSION } from '../api/version.js';
import { PolicyError, isPolicyError } from '../policy/errors.js';
import { assertName, parseVolumeRef, type VolumeRef } from '../policy/names.js';
import { DRIVER_OPTION_KEYS, RUNTIME_OPTION_KEYS, parseDriverOptions, parseOptionPairs, parseRuntimeOptions } from '../policy/options.js';
import { parsePolicy } from '../policy/validate.js';
import { formatSize } from '../policy/units.js';
import { StateUnavailableError } from '../state/kv.js';
import { DEFAULT_PREFIX } from '../state/keys.js';
import { MasterBackend, type RecordBackend } from './backend.js';
import * as out from './output.js';
import { joinMounts } from './mounts.js';


export interface CliIO {
  stdout: (text: string) => void;
  stderr: (text: string) => void;
  /** Reads all of stdin (tenant upload). */
  readStdin: () => Promise<string>;
  /** True when stdin is a terminal (nothing piped in). */
  stdinIsTTY: boolean;
  env: NodeJS.ProcessEnv;
}

/** A malformed command line that commander itself cannot see (e.g. TENANT/VOLUME without "/"). */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

interface GlobalOptions {
  master: string;
  etcd?: string[];
  prefix: string;
  tokenFile?: string;
  json: boolean;
  timeout: number;
}

function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

function seconds(value: string): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0) throw new UsageError(`--timeout must be a positive number of seconds, got ${JSON.stringify(value)}`);
  return n;
}

/** Per-invocation state: lazily created clients, closed at the end. */
class Context {
  private api: ApiClient | null = null;
  private backend: RecordBackend | null = null;

  constructor(
    readonly io: CliIO,
    readonly opts: GlobalOptions,
  ) {}

  async master(): Promise<ApiClient> {
    if (!this.api) {
      const token = this.opts.tokenFile ? await readTokenFile(this.opts.tokenFile) : null;
      this.api = new ApiClient({ master: this.opts.master, token, timeoutMs: this.opts.timeout * 1000, userAgent: `volcli/${VERSION}` });
    }
    return this.api;
  }

  /** Record reads and record-only writes: etcd with --etcd, else the master. */
  async records(): Promise<RecordBackend> {
    if (!this.backend) {
      if (this.opts.etcd?.length) {
        const { EtcdBackend } = await import('./etcd-backend.js');
        this.backend = new EtcdBackend(this.opts.etcd, this.opts.prefix, this.opts.timeout * 1000);
      } else {
        this.backend = new MasterBackend(await this.master());
      }
    }
    return this.backend;
  }

  print(human: string, value: unknown): void {
    this.io.stdout(this.opts.json ? out.json(value) : human);
  }

  async close(): Promise<void> {
    await this.backend?.close().catch(() => undefined);
  }
}

function volumeRef(text: string): VolumeRef {
  try {
    return parseVolumeRef(text);
  } catch (err) {
    if (isPolicyError(err)) throw new UsageError(err.message);
    throw err;
  }
}

function tenantName(text: string): string {
  try {
    return assertName('tenant', text);
  } catch (err) {
    if (isPolicyError(err)) throw new UsageError(err.message);
    throw err;
  }
}

function optionPairs(pairs: string[] | undefined, check: (values: Record<string, string>) => unknown): Record<string, string> {
  try {
    const values = parseOptionPairs(pairs ?? []);
    check(values);
    return values;
  } catch (err) {
    if (isPolicyError(err)) throw new UsageError(err.message);
    throw err;
  }
}

type Action = (ctx: Context, ...args: string[]) => Promise<void>;

export function buildProgram(io: CliIO, holder: { ctx: Context | null }): Command {
  const program = new Command('volcli');
  const act =
    (fn: Action) =>
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
    .addOption(new Option('--token-file <path>', "file holding volmaster's bearer token (env VOLPLUGIN_TOKEN_FILE)").default(io.env.VOLPLUGIN_TOKEN_FILE || undefined))
    .addOption(new Option('--timeout <seconds>', 'give up on volmaster or etcd after this long').default(30).argParser(seconds))
    .option('--json', 'machine-readable output (errors too, on stderr)', false)
    .addHelpText('after', '\nRun "volcli help COMMAND" or "volcli COMMAND help SUBCOMMAND" for details. Exit codes: 0 ok, 1 error, 2 usage.');

  // ---- tenant -----------------------------------------------------------------------------
  const tenant = program.command('tenant').description('manage tenant policies');

  tenant
    .command('upload')
    .description('upload a tenant policy (JSON on stdin); every upload is kept as a new revision')
    .argument('<tenant>', 'tenant name')
    .addHelpText('after', '\nExample: volcli tenant upload tenant1 < tenant1.json')
    .action(
      act(async (ctx, name) => {
        const t = tenantName(name!);
        if (ctx.io.stdinIsTTY) throw new UsageError(`pipe the policy JSON into stdin: volcli tenant upload ${t} < policy.json`);
        const text = await ctx.io.readStdin();
        parsePolicy(text, 'the policy on stdin'); // errors with line and column before any network
        const backend = await ctx.records();
        const record = await backend.uploadTenant(t, text);
        ctx.print(`uploaded tenant ${record.name} (revision ${record.revision})\n`, record);
      }),
    );

  tenant
    .command('delete')
    .description('delete a tenant policy (its volumes, mounts and history stay)')
    .argument('<tenant>', 'tenant name')
    .action(
      act(async (ctx, name) => {
        const t = tenantName(name!);
        await (await ctx.records()).deleteTenant(t);
        ctx.print(`deleted tenant ${t}\n`, { deleted: t });
      }),
    );

  tenant
    .command('get')
    .description("print a tenant's policy as JSON (--revision for an older one)")
    .argument('<tenant>', 'tenant name')
    .addOption(new Option('--revision <n>', 'a revision from the history').argParser((v) => {
      if (!/^[1-9]\d*$/.test(v)) throw new UsageError(`--revision must be a revision number (1, 2, ...), got ${JSON.stringify(v)}`);
      return v;
    }))
    .action(
      act(async (ctx, name) => {
        const t = tenantName(name!);
        const revision = (ctx.opts as GlobalOptions & { revision?: string }).revision;
        const backend = await ctx.records();
        const record = revision ? await backend.getTenantRevision(t, Number(revision)) : await backend.getTenant(t);
        ctx.print(out.json(record.policy), record);
      }),
    );

  tenant
    .command('list')
    .description('list tenants')
    .action(
      act(async (ctx) => {
        const tenants = await (await ctx.records()).listTenants();
        ctx.print(out.formatTenants(tenants), tenants);
      }),
    );

  tenant
    .command('history')
    .description("list every uploaded revision of a tenant's policy")
    .argument('<tenant>', 'tenant name')
    .action(
      act(async (ctx, name) => {
        const revisions = await (await ctx.records()).tenantHistory(tenantName(name!));
        ctx.print(out.formatHistory(revisions), revisions);
      }),
    );

  // ---- volume -----------------------------------------------------------------------------
  const volume = program.command('volume').description('manage volumes');
  const opt = () => new Option('--opt <key=value>', 'option, repeatable').argParser(collect);

  volume
    .command('create')
    .description("create a volume from its tenant's policy, as docker volume create does (same options: no-op)")
    .argument('<tenant/volume>', 'volume to create')
    .addOption(opt())
    .addHelpText('after', `\nOptions (--opt): ${DRIVER_OPTION_KEYS.join(', ')}\nExample: volcli volume create tenant1/db --opt size=10GB --opt snapshots=false`)
    .action(
      act(async (ctx, ref) => {
        const { tenant: t, volume: v } = volumeRef(ref!);
        const values = optionPairs((ctx.opts as GlobalOptions & { opt?: string[] }).opt, parseDriverOptions);
        const { volume: record, created } = await (await ctx.master()).createVolume(t, v, values);
        const what = created ? 'created' : 'exists with these options:';
        ctx.print(`${what} ${t}/${v}: ${formatSize(record.options.sizeBytes)} ${record.options.filesystem} in ${record.pool}/${record.image}\n`, { created, volume: record });
      }),
    );

  volume
    .command('get')
    .description("print a volume's configuration")
    .argument('<tenant/volume>', 'volume')
    .action(
      act(async (ctx, ref) => {
        const { tenant: t, volume: v } = volumeRef(ref!);
        const record = await (await ctx.records()).getVolume(t, v);
        ctx.print(out.formatVolume(record), record);
      }),
    );

  volume
    .command('list')
    .description("list a tenant's volumes")
    .argument('<tenant>', 'tenant name')
    .action(
      act(async (ctx, name) => {
        const volumes = await (await ctx.records()).listVolumes(tenantName(name!));
        ctx.print(out.formatVolumes(volumes, false), volumes);
      }),
    );

  volume
    .command('list-all')
    .description('list every volume of every tenant')
    .action(
      act(async (ctx) => {
        const volumes = await (await ctx.records()).listVolumes();
        ctx.print(out.formatVolumes(volumes, true), volumes);
      }),
    );

  volume
    .command('remove')
    .description('remove a volume and its data (image and snapshots); refused while mounted or in use')
    .argument('<tenant/volume>', 'volume')
    .action(
      act(async (ctx, ref) => {
        const { tenant: t, volume: v } = volumeRef(ref!);
        await (await ctx.master()).removeVolume(t, v);
        ctx.print(`removed ${t}/${v}\n`, { removed: `${t}/${v}` });
      }),
    );

  volume
    .command('force-remove')
    .description('delete only the records of a volume (volume and mount) from etcd; the image and its data stay')
    .argument('<tenant/volume>', 'volume')
    .action(
      act(async (ctx, ref) => {
        const { tenant: t, volume: v } = volumeRef(ref!);
        await (await ctx.records()).forceRemoveVolume(t, v);
        ctx.print(`removed the records of ${t}/${v} (the image was left alone)\n`, { removed: `${t}/${v}`, recordsOnly: true });
      }),
    );

  const runtime = volume.command('runtime').description('snapshot and rate-limit settings of a volume, changed without remount');
  runtime
    .command('get')
    .description("print a volume's runtime options")
    .argument('<tenant/volume>', 'volume')
    .action(
      act(async (ctx, ref) => {
        const { tenant: t, volume: v } = volumeRef(ref!);
        const options = await (await ctx.records()).getRuntime(t, v);
        ctx.print(out.formatRuntimeOptions(options), options);
      }),
    );
  runtime
    .command('set')
    .description("change a volume's runtime options (keys not given keep their value)")
    .argument('<tenant/volume>', 'volume')
    .argument('[key=value...]', 'options, as with --opt')
    .addOption(opt())
    .addHelpText('after', `\nOptions: ${RUNTIME_OPTION_KEYS.join(', ')}\nExample: volcli volume runtime set tenant1/db --opt rate-limit.write.iops=500 snapshots.keep=5`)
    .action(
      act(async (ctx, ref, ...pairs) => {
        const { tenant: t, volume: v } = volumeRef(ref!);
        const given = [...((ctx.opts as GlobalOptions & { opt?: string[] }).opt ?? []), ...pairs];
        const values = optionPairs(given, parseRuntimeOptions);
        if (Object.keys(values).length === 0) throw new UsageError(`give at least one --opt KEY=VALUE; keys: ${RUNTIME_OPTION_KEYS.join(', ')}`);
        const options = await (await ctx.master()).setRuntime(t, v, values);
        ctx.print(out.formatRuntimeOptions(options), options);
      }),
    );

  const snapshot = volume.command('snapshot').description('snapshots of a volume');
  snapshot
    .command('take')
    .description('take a snapshot now (named manual-<time> unless --name is given)')
    .argument('<tenant/volume>', 'volume')
    .option('--name <name>', 'snapshot name')
    .action(
      act(async (ctx, ref) => {
        const { tenant: t, volume: v } = volumeRef(ref!);
        const name = (ctx.opts as GlobalOptions & { name?: string }).name;
        const snap = await (await ctx.master()).takeSnapshot(t, v, name);
        ctx.print(`took snapshot ${snap.name} of ${t}/${v}\n`, snap);
      }),
    );
  snapshot
    .command('list')
    .description("list a volume's snapshots, oldest first")
    .argument('<tenant/volume>', 'volume')
    .action(
      act(async (ctx, ref) => {
        const { tenant: t, volume: v } = volumeRef(ref!);
        const snaps = await (await ctx.master()).listSnapshots(t, v);
        ctx.print(out.formatSnapshots(snaps), snaps);
      }),
    );
  snapshot
    .command('remove')
    .description('remove a snapshot')
    .argument('<tenant/volume>', 'volume')
    .argument('<snapshot>', 'snapshot name')
    .action(
      act(async (ctx, ref, name) => {
        const { tenant: t, volume: v } = volumeRef(ref!);
        await (await ctx.master()).removeSnapshot(t, v, name!);
        ctx.print(`removed snapshot ${name} of ${t}/${v}\n`, { removed: name });
      }),
    );
  snapshot
    .command('copy')
    .description('copy a snapshot into a new volume')
    .argument('<tenant/volume>', 'source volume')
    .argument('<snapshot>', 'snapshot name')
    .argument('<new-tenant/new-volume>', 'the volume to create')
    .addOption(opt())
    .action(
      act(async (ctx, ref, name, target) => {
        const { tenant: t, volume: v } = volumeRef(ref!);
        const to = volumeRef(target!);
        const values = optionPairs((ctx.opts as GlobalOptions & { opt?: string[] }).opt, parseDriverOptions);
        const record = await (await ctx.master()).copySnapshot(t, v, name!, { ...to, options: values });
        ctx.print(`copied ${t}/${v}@${name} to ${to.tenant}/${to.volume} (${record.pool}/${record.image})\n`, record);
      }),
    );
  snapshot
    .command('rollback')
    .description('roll a volume back to a snapshot (refused while mounted)')
    .argument('<tenant/volume>', 'volume')
    .argument('<snapshot>', 'snapshot name')
    .action(
      act(async (ctx, ref, name) => {
        const { tenant: t, volume: v } = volumeRef(ref!);
        await (await ctx.master()).rollbackSnapshot(t, v, name!);
        ctx.print(`rolled ${t}/${v} back to ${name}\n`, { rolledBack: `${t}/${v}`, snapshot: name });
      }),
    );

  // ---- mount ------------------------------------------------------------------------------
  const mount = program.command('mount').description('inspect mounts (volplugin on each host mounts and unmounts)');
  mount
    .command('list')
    .description('list every mount: the mount locks joined with what the holding hosts report, then warnings and host problems')
    .action(
      act(async (ctx) => {
        const records = await ctx.records();
        const [locks, reports] = await Promise.all([records.listMounts(), records.listHosts()]);
        const listing = joinMounts(locks, reports);
        ctx.print(out.formatMounts(listing), listing);
      }),
    );
  mount
    .command('get')
    .description("print a volume's mount")
    .argument('<tenant/volume>', 'volume')
    .action(
      act(async (ctx, ref) => {
        const { tenant: t, volume: v } = volumeRef(ref!);
        const record = await (await ctx.records()).getMount(t, v);
        ctx.print(out.formatMount(record), record);
      }),
    );
  mount
    .command('force-remove')
    .description('delete a mount record without unmounting (for a host that is gone)')
    .argument('<tenant/volume>', 'volume')
    .action(
      act(async (ctx, ref) => {
        const { tenant: t, volume: v } = volumeRef(ref!);
        const removed = await (await ctx.records()).forceRemoveMount(t, v);
        ctx.print(`removed the mount record of ${t}/${v} (held by ${removed.host})\n`, removed);
      }),
    );

  // ---- host -------------------------------------------------------------------------------
  const host = program.command('host').description('what each volplugin reports about itself (mounts, problems)');
  host
    .command('list')
    .description('list the live volplugins and their reports')
    .action(
      act(async (ctx) => {
        const hosts = await (await ctx.records()).listHosts();
        ctx.print(out.formatHosts(hosts), hosts);
      }),
    );
  host
    .command('get')
    .description("print one volplugin's report")
    .argument('<host-id>', 'host id (see volcli host list)')
    .action(
      act(async (ctx, hostId) => {
        const report = await (await ctx.records()).getHost(hostId!);
        ctx.print(out.formatHost(report), report);
      }),
    );

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
