// Never two writable mounts of one volume: every host's view of the volume's mountpoint, the image
// behind the mounted device, and whether a write through it reaches the device. A host that still
// shows a fenced mount is fine as long as its writes fail.

import type { ChaosHost, MountView } from '../hosts.js';
import { violation, type Violation } from './types.js';

export interface WriterView extends MountView {
  write: 'ok' | 'failed' | 'hung' | 'not mounted';
}

/** Every host's view of `name` (a probe write where it is mounted). */
export async function writerViews(name: string, hosts: readonly ChaosHost[]): Promise<WriterView[]> {
  return Promise.all(
    hosts.map(async (host) => {
      const view = await host.view(name);
      return { ...view, write: view.mounted ? await host.probeWrite(name) : ('not mounted' as const) };
    }),
  );
}

/**
 * `image` is the volume's image: a mount whose device maps another image (a reused loop device)
 * is a writer of that other volume and is reported too.
 */
export async function checkSingleWriter(name: string, image: string, hosts: readonly ChaosHost[], lockHolder?: string | null): Promise<Violation[]> {
  const views = await writerViews(name, hosts);
  const out: Violation[] = [];
  const writable = views.filter((v) => v.write === 'ok');
  if (writable.length > 1) {
    out.push(
      violation('single-writer', `${name} is writable on ${writable.length} hosts: ${writable.map((v) => `${v.host} (${v.device})`).join(', ')}`, {
        hosts: views,
        lockHolder: lockHolder ?? null,
      }),
    );
  }
  for (const v of views.filter((view) => view.mounted && view.image !== null && view.image !== image)) {
    out.push(violation('single-writer', `${v.host} mounts ${v.device} at ${name}'s mountpoint, but that device maps image ${v.image}, not ${image}`, { view: v }));
  }
  return out;
}
