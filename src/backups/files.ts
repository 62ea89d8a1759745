// File steps that make a backup durable before it counts: checksums read back from the target,
// fsync of a directory after a rename (so that the rename survives a power cut), and the atomic
// replacement of a small file (temp file, fsync, rename, fsync of the directory).

import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { open, rename, rm } from 'node:fs/promises';
import path from 'node:path';

/** SHA-256 of a file (hex), read back from where it is stored; `onBytes` sees the bytes read so far. */
export async function sha256File(file: string, onBytes?: (done: number) => void): Promise<string> {
  const hash = createHash('sha256');
  let done = 0;
  for await (const chunk of createReadStream(file, { highWaterMark: 1 << 20 })) {
    hash.update(chunk as Buffer);
    done += (chunk as Buffer).length;
    onBytes?.(done);
  }
  return hash.digest('hex');
}

/** fsync(2) of a directory: its entries (a rename, a new file) are on disk afterwards. */
export async function syncDir(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/**
 * Replaces `file` with `data` so that a reader sees the old or the new content whole, never a
 * part, whenever the process dies: a temp file beside it, fsync, rename over it, fsync of the directory.
 */
export async function writeAtomically(file: string, data: string): Promise<void> {
  const temp = `${file}.tmp`;
  const handle = await open(temp, 'w', 0o600);
  try {
    await handle.writeFile(data);
    await handle.sync();
  } catch (err) {
    await handle.close().catch(() => undefined);
    await rm(temp, { force: true });
    throw err;
  }
  await handle.close();
  await rename(temp, file);
  await syncDir(path.dirname(file));
}
