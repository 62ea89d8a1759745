// A host's small state files (the mount table, the CSI node's table): written whole, atomically
// (a temporary file renamed over the old one, mode 600), one write at a time in call order, so
// that the last save wins and no two interleave.

import { mkdir, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';

export class StateFileWriter {
  private writing: Promise<void> = Promise.resolve();

  constructor(readonly file: string) {}

  /** Writes `value` as JSON after every earlier write; rejects when this write fails. */
  write(value: unknown): Promise<void> {
    const text = `${JSON.stringify(value, null, 2)}\n`;
    const next = this.writing.then(async () => {
      await mkdir(path.dirname(this.file), { recursive: true });
      const tmp = `${this.file}.tmp`;
      await writeFile(tmp, text, { mode: 0o600 });
      await rename(tmp, this.file);
    });
    this.writing = next.catch(() => undefined);
    return next;
  }
}
