// The host's request inbox (src/plugin/cluster/requests.ts) on the etcd twin: a request is run once
// by the handler of its kind and answered; failures and unknown kinds become answers, not silence;
// a request past its deadline is not started.
import { afterEach, describe, expect, it } from 'vitest';
import pino from 'pino';
import { MemoryKV } from '../../src/state/memory.js';
import { StateStore } from '../../src/state/store.js';
import { HostRequestInbox } from '../../src/plugin/cluster/requests.js';

const log = pino({ level: 'silent' });
let inboxes: HostRequestInbox[] = [];

function setup(pollMs = 50) {
  const kv = new MemoryKV();
  const master = new StateStore(kv.client(), { owner: 'volmaster@test' });
  const hostStore = new StateStore(kv.client(), { owner: 'volplugin@h1' });
  const inbox = new HostRequestInbox({ store: hostStore, hostId: 'h1', log, pollMs });
  inboxes.push(inbox);
  return { master, hostStore, inbox };
}

afterEach(async () => {
  await Promise.all(inboxes.map((i) => i.stop()));
  inboxes = [];
});

describe('host request inbox', () => {
  it('runs the handler of the request kind once and answers with its result', async () => {
    const { master, inbox } = setup();
    const seen: string[] = [];
    inbox.handle('resize-fs', async (request) => {
      seen.push(`${request.tenant}/${request.volume}:${String(request.params.sizeBytes)}`);
      return { grownTo: request.params.sizeBytes };
    });
    await inbox.start();
    const answer = await master.askHost('h1', { kind: 'resize-fs', tenant: 't', volume: 'v', params: { sizeBytes: 42 } }, 5_000);
    expect(answer).toMatchObject({ ok: true, result: { grownTo: 42 } });
    // Re-listing (the poll) never runs it again.
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(seen).toEqual(['t/v:42']);
  });

  it('answers a failing handler with its code and message, and an unknown kind with UNKNOWN_KIND', async () => {
    const { master, inbox } = setup();
    inbox.handle('freeze', async () => {
      throw Object.assign(new Error('t/v is not mounted here'), { code: 'NOT_MOUNTED' });
    });
    await inbox.start();
    expect(await master.askHost('h1', { kind: 'freeze', tenant: 't', volume: 'v' }, 5_000)).toMatchObject({
      ok: false,
      code: 'NOT_MOUNTED',
      error: 't/v is not mounted here',
    });
    expect(await master.askHost('h1', { kind: 'no-such-kind' }, 5_000)).toMatchObject({ ok: false, code: 'UNKNOWN_KIND' });
  });

  it('finds a request written while it was not watching (the poll), and never starts one past its deadline', async () => {
    const { master, inbox } = setup(50);
    let runs = 0;
    inbox.handle('slow', async () => {
      runs++;
    });
    // Written before the inbox starts: found by the first listing.
    const early = master.askHost('h1', { kind: 'slow' }, 5_000);
    await inbox.start();
    expect(await early).toMatchObject({ ok: true });
    expect(runs).toBe(1);
    // A request whose requester's deadline has passed is left alone.
    const late = setup(50);
    late.inbox.handle('slow', async () => {
      runs++;
    });
    await expect(late.master.askHost('h1', { kind: 'slow' }, 1)).rejects.toMatchObject({ code: 'HOST_TIMEOUT' });
    await late.inbox.start();
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(runs).toBe(1);
  });

  it('refuses a second handler for one kind', () => {
    const { inbox } = setup();
    inbox.handle('ping', async () => undefined);
    expect(() => inbox.handle('ping', async () => undefined)).toThrow(/registered already/);
  });
});

describe('a stopped inbox', () => {
  it('answers nothing once stopped: the requester times out', async () => {
    const { master, inbox } = setup();
    inbox.handle('ping', async () => ({}));
    await inbox.start();
    await inbox.stop();
    await expect(master.askHost('h1', { kind: 'ping' }, 300)).rejects.toMatchObject({ code: 'HOST_TIMEOUT' });
  });
});
