// Filesystem commands from a tenant policy: `%` is the device, `%%` a literal percent sign. The
// command runs in a POSIX shell (`sh -c`), so the device path is single-quoted when substituted.

import type { TenantPolicy } from './types.js';
import { PolicyError } from './errors.js';
import { DEFAULT_FILESYSTEMS } from './validate.js';

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

/** Quotes a word for a POSIX shell. */
export function shellQuote(word: string): string {
  return /^[A-Za-z0-9_./:=@+-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
}

/** The shell command line for a device: every `%` becomes the (quoted) device, `%%` becomes `%`. */
export function renderFormatCommand(command: string, device: string): string {
  return command.replace(/%%|%/g, (m) => (m === '%%' ? '%' : shellQuote(device)));
}
