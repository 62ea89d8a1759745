// Reading a file that holds a secret (a bearer token, a TLS private key): it must exist, and no one
// but its owner (for a TLS key: its owner and group) may read it, or whoever can read it has the
// secret's power. A file others can read is refused with the fix, not silently used.

import { readFile, stat } from 'node:fs/promises';

export interface SecretFileOptions {
  /** What it is, for messages: "the token file". */
  what: string;
  /** The flag that named it: "--token-file". */
  flag: string;
  /** Let the group read it too (TLS keys, e.g. Debian's ssl-cert group); default: owner only. */
  groupMayRead?: boolean;
}

/** Throws when others (or the group) can read `path`; the message says which chmod fixes it. */
export async function checkSecretFileMode(path: string, options: SecretFileOptions): Promise<void> {
  let mode: number;
  try {
    mode = (await stat(path)).mode;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'error';
    throw new Error(`cannot read ${options.what} ${path} (${code}); check ${options.flag}`, { cause: err });
  }
  const forbidden = options.groupMayRead ? 0o007 : 0o077;
  if ((mode & forbidden) !== 0) {
    const who = options.groupMayRead ? 'others' : 'its group or others';
    const fix = options.groupMayRead ? `chmod o-rwx ${path}` : `chmod 600 ${path}`;
    throw new Error(
      `${options.what} ${path} can be read by ${who} (mode ${(mode & 0o777).toString(8).padStart(4, '0')}), so anyone on this machine could use it; make it private: ${fix}`,
    );
  }
}

/** The file's text, after checkSecretFileMode. */
export async function readSecretFile(path: string, options: SecretFileOptions): Promise<string> {
  await checkSecretFileMode(path, options);
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'error';
    throw new Error(`cannot read ${options.what} ${path} (${code}); check ${options.flag}`, { cause: err });
  }
}
