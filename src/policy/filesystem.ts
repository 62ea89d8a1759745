// Filesystem commands from a tenant policy, e.g. "mkfs.ext4 -q -m0 %". They run as root on every
// Docker host, so they are data that must never reach a shell: a command is a program and its
// arguments separated by spaces, run as an argument vector (no `sh -c`, no expansion of any kind).
// `%` in an argument is the device, `%%` a literal `%`, as in the original.
//
// The rules, checked at policy upload (master, volcli --etcd) and again by volplugin against its
// own --mkfs-allow right before it runs one (a record in etcd is not trusted):
// - the program (first word) is a bare name on the allowlist (default mkfs.ext4, mkfs.xfs,
//   mkfs.btrfs): no path, no `%`;
// - words are separated by spaces and made only of letters, digits and `_ - . , = : + @ % ^`.
//   Everything else is refused, which covers every piece of shell syntax (`; | & $ \` < > ( ) { }`,
//   quotes, globs `* ? [ ]`, `~ ! #`, backslashes, tabs, newlines) and anything not ASCII;
// - no argument names a file or device on the host other than the volume's own: no `/` (so no
//   path, and mkfs.btrfs cannot be handed a second device), no `..`, and no blkid tag such as
//   `UUID=` or `LABEL=` (e2fsprogs resolves those to devices). The command also runs in an empty
//   directory, so a relative name such as `-d etc` (mkfs.ext4 copying a directory into the new
//   filesystem) finds nothing;
// - at least one `%` (the device) among the arguments.

import { PolicyError } from './errors.js';
import type { TenantPolicy } from './types.js';

/**
 * Used when a policy has no `filesystems` block. `lazy_journal_init=1`: mke2fs does not zero the
 * journal, which is safe here because volplugin formats only an image that reads as zeros (the
 * master creates it thin, and the mount checks its ends before formatting), and which matters:
 * zeroing the journal through rbd-fuse took 0.65 s of a 1 GiB volume's 0.66 s mkfs (the journal
 * grows with the volume, to 128 MiB at 10 GiB). The example policies say the same.
 */
export const DEFAULT_FILESYSTEMS: Readonly<Record<string, string>> = Object.freeze({ ext4: 'mkfs.ext4 -m0 -E lazy_journal_init=1 %' });

/** The programs a filesystem command may run unless the host says otherwise (volplugin --mkfs-allow). */
export const DEFAULT_MKFS_ALLOW: readonly string[] = Object.freeze(['mkfs.ext4', 'mkfs.xfs', 'mkfs.btrfs']);

/** Longest command accepted, in characters. */
export const MAX_FORMAT_COMMAND_LENGTH = 1024;

const WORD_CHAR = /[A-Za-z0-9_.,=:+@%^-]/;
/** What an allowlist entry may be: a program name, never a path. */
const PROGRAM_NAME = /^[A-Za-z0-9][A-Za-z0-9_.+-]{0,63}$/;
const DEVICE_TAG = /(?:UUID|LABEL)=/i;

/** A filesystem command turned into what execve gets. */
export interface FormatArgv {
  program: string;
  args: string[];
}

/** Why `name` cannot be on an allowlist, or null. */
export function mkfsProgramProblem(name: string): string | null {
  return PROGRAM_NAME.test(name) ? null : `${JSON.stringify(name)} is not a program name (letters, digits, "_", ".", "+", "-"; no path)`;
}

function describeChar(c: string): string {
  if (c === '\n') return 'a newline';
  if (c === '\t') return 'a tab';
  if (c === '\r') return 'a carriage return';
  const code = c.codePointAt(0) ?? 0;
  if (code < 0x20 || code === 0x7f) return `the control character U+${code.toString(16).padStart(4, '0').toUpperCase()}`;
  return JSON.stringify(c);
}

type Parsed = { ok: true; argv: FormatArgv } | { ok: false; problem: string };

/**
 * Checks `command` against the rules above and splits it into program and arguments (`%` still
 * unreplaced). `allowed` null checks everything but the allowlist.
 */
function parse(command: string, allowed: readonly string[] | null): Parsed {
  const fail = (problem: string): Parsed => ({ ok: false, problem });
  if (command.length > MAX_FORMAT_COMMAND_LENGTH) return fail(`is longer than ${MAX_FORMAT_COMMAND_LENGTH} characters`);
  for (const c of command) {
    if (c !== ' ' && !WORD_CHAR.test(c)) {
      return fail(
        `contains ${describeChar(c)}: a filesystem command is run without a shell, as a program and arguments separated by spaces, ` +
          'each made of letters, digits and _ - . , = : + @ % ^ only (no shell syntax, quotes, globs or paths)',
      );
    }
  }
  const [program, ...args] = command.split(' ').filter((w) => w !== '');
  if (program === undefined) return fail('is empty; write e.g. "mkfs.ext4 -m0 %"');
  const allowedText = allowed === null ? '' : `; allowed programs: ${allowed.join(', ')}`;
  if (program.includes('%')) return fail(`starts with ${JSON.stringify(program)}: the first word must be the program${allowedText}`);
  if (allowed !== null && !allowed.includes(program)) {
    return fail(`runs ${JSON.stringify(program)}, which is not an allowed program${allowedText}`);
  }
  for (const arg of args) {
    if (arg.includes('..')) return fail(`has the argument ${JSON.stringify(arg)}: ".." could name a directory of the host`);
    if (DEVICE_TAG.test(arg)) return fail(`has the argument ${JSON.stringify(arg)}: UUID= and LABEL= name other devices of the host`);
  }
  if (!args.some((a) => a.replace(/%%/g, '').includes('%'))) {
    return fail('has no "%" where the device goes, e.g. "mkfs.ext4 -m0 %" ("%%" is a literal %)');
  }
  return { ok: true, argv: { program, args } };
}

/**
 * Why `command` cannot be a tenant's filesystem command, or null when it can. The message starts
 * with the command itself, for `filesystems.NAME: <message>`.
 */
export function formatCommandProblem(command: string, allowed: readonly string[] | null = DEFAULT_MKFS_ALLOW): string | null {
  const parsed = parse(command, allowed);
  return parsed.ok ? null : `the command ${JSON.stringify(command)} ${parsed.problem}`;
}

/**
 * The program and arguments to run for `device`: every `%` becomes the device, `%%` a `%`.
 * Throws an Error naming the command and the allowed programs when the command breaks a rule.
 */
export function formatArgv(command: string, device: string, allowed: readonly string[]): FormatArgv {
  const parsed = parse(command, allowed);
  if (!parsed.ok) throw new Error(`the filesystem command ${JSON.stringify(command)} ${parsed.problem}`);
  const args = parsed.argv.args.map((arg) => arg.replace(/%%|%/g, (m) => (m === '%%' ? '%' : device)));
  return { program: parsed.argv.program, args };
}

/** The tenant's command for `filesystem` (the default ext4 command when the policy has no map). */
export function formatCommandFor(policy: TenantPolicy, filesystem: string): string {
  const filesystems = policy.filesystems ?? DEFAULT_FILESYSTEMS;
  const command = filesystems[filesystem];
  if (command === undefined) {
    throw new PolicyError(
      'INVALID_OPTION',
      `filesystem: ${JSON.stringify(filesystem)} is not one of the tenant's filesystems (${Object.keys(filesystems).join(', ')})`,
      'filesystem',
    );
  }
  return command;
}
