// Small JSON notes a mapper keeps under its state directory, one per mapped volume
// (<dir>/<tenant>/<volume>.json), so that discovery after a restart finds only this volplugin's
// mappings (never another program's, nor another volplugin instance's on the same host) and knows
// their pool, image and Ceph client address.

import { mkdir, readFile, readdir, rename, rm, rmdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Mapping } from './types.js';

export class MappingNotes {
  constructor(readonly dir: string) {}

  private fileOf(tenant: string, volume: string): string {
    return path.join(this.dir, tenant, `${volume}.json`);
  }

  async write(mapping: Mapping): Promise<void> {
    const file = this.fileOf(mapping.tenant, mapping.volume);
    await mkdir(path.dirname(file), { recursive: true });
    await writeFile(`${file}.tmp`, JSON.stringify(mapping));
    await rename(`${file}.tmp`, file);
  }

  async remove(tenant: string, volume: string): Promise<void> {
    const file = this.fileOf(tenant, volume);
    await rm(file, { force: true });
    await rmdir(path.dirname(file)).catch(() => undefined);
  }

  async all(): Promise<Mapping[]> {
    const out: Mapping[] = [];
    for (const tenant of await readdir(this.dir).catch(() => [] as string[])) {
      for (const entry of await readdir(path.join(this.dir, tenant)).catch(() => [] as string[])) {
        if (!entry.endsWith('.json')) continue;
        try {
          const m = JSON.parse(await readFile(path.join(this.dir, tenant, entry), 'utf8')) as Mapping;
          if (typeof m.pool === 'string' && typeof m.image === 'string') out.push(m);
        } catch {
          // unreadable note: ignore (it is rewritten on the next map)
        }
      }
    }
    return out;
  }
}
