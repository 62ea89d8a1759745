// The host's persistent identity: a UUID kept in <state-dir>/host-id, made on first start. Locks
// and reports carry it so that this host's records can be told from every other host's, also
// across restarts and host renames (the --host-label is only a human name).

import { randomUUID } from 'node:crypto';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';

/** Who this host is: its persistent id and its --host-label (a human name). */
export interface HostIdentity {
  id: string;
  label: string;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

export async function loadHostId(stateDir: string): Promise<string> {
  const file = path.join(stateDir, 'host-id');
  try {
    const text = (await readFile(file, 'utf8')).trim();
    if (!UUID.test(text)) {
      throw new Error(`${file} holds ${JSON.stringify(text.slice(0, 60))}, not a UUID: restore it or delete it to make a new identity`);
    }
    return text;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  await mkdir(stateDir, { recursive: true });
  const id = randomUUID();
  const tmp = `${file}.tmp-${process.pid}`;
  await writeFile(tmp, `${id}\n`, { mode: 0o644 });
  await rename(tmp, file);
  return id;
}
