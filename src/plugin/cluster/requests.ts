// The host's inbox of requests from the masters and the supervisor (src/state/host-requests.ts):
// things only the host that holds a volume can do. Each kind of request has one handler, registered
// by the part of volplugin it concerns; the inbox runs each request once, answers it (an error
// becomes an answer with ok: false and a code) and never starts one past its deadline, when its
// requester has stopped waiting. It learns of requests from a watch and, as a safety net for a
// watch that died, by listing them every few seconds.

import type { HostRequest } from '../../state/records.js';
import type { PendingHostRequest, StateStore } from '../../state/store.js';
import type { Watch } from '../../state/kv.js';
import { messageOf } from '../errors.js';

export type HostRequestHandler = (request: HostRequest) => Promise<Record<string, unknown> | void>;

export interface InboxLog {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  debug(obj: object, msg: string): void;
}

export interface HostRequestInboxOptions {
  store: Pick<StateStore, 'pendingHostRequests' | 'watchHostRequests' | 'answerHostRequest'>;
  hostId: string;
  log: InboxLog;
  /** How often pending requests are listed even without a watch event (default 5 s). */
  pollMs?: number;
}

/** Ids remembered as done, so that a request re-listed before its answer is seen is not run twice. */
const DONE_MEMORY = 1_000;

export class HostRequestInbox {
  private readonly handlers = new Map<string, HostRequestHandler>();
  private readonly running = new Map<string, Promise<void>>();
  private readonly done: string[] = [];
  private watch: Watch | null = null;
  private timer: NodeJS.Timeout | null = null;
  private stopped = false;
  private scanning: Promise<void> | null = null;
  private again = false;

  constructor(private readonly o: HostRequestInboxOptions) {}

  /** Registers the handler of one kind of request (one per kind). */
  handle(kind: string, handler: HostRequestHandler): void {
    if (this.handlers.has(kind)) throw new Error(`a handler for host requests of kind ${kind} is registered already`);
    this.handlers.set(kind, handler);
  }

  async start(): Promise<void> {
    await this.ensureWatch();
    this.scan();
    const every = this.o.pollMs ?? 5_000;
    this.timer = setInterval(() => {
      void this.ensureWatch();
      this.scan();
    }, every);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    await this.watch?.close().catch(() => undefined);
    this.watch = null;
    await this.scanning?.catch(() => undefined);
    await Promise.allSettled([...this.running.values()]);
  }

  private async ensureWatch(): Promise<void> {
    if (this.watch || this.stopped) return;
    try {
      this.watch = await this.o.store.watchHostRequests(this.o.hostId, () => this.scan());
    } catch (err) {
      this.o.log.debug({ err: messageOf(err) }, 'host request watch not set up yet; listing them meanwhile');
    }
  }

  /** Lists pending requests and starts those not started yet (coalesced). */
  private scan(): void {
    if (this.stopped) return;
    if (this.scanning) {
      this.again = true;
      return;
    }
    this.scanning = (async () => {
      do {
        this.again = false;
        try {
          for (const pending of await this.o.store.pendingHostRequests(this.o.hostId)) this.start1(pending);
        } catch (err) {
          this.o.log.debug({ err: messageOf(err) }, 'could not list host requests; trying again soon');
        }
      } while (this.again && !this.stopped);
    })().finally(() => (this.scanning = null));
  }

  private start1(pending: PendingHostRequest): void {
    const { id } = pending.request;
    if (this.running.has(id) || this.done.includes(id) || this.stopped) return;
    const run = this.run(pending).finally(() => {
      this.running.delete(id);
      this.done.push(id);
      if (this.done.length > DONE_MEMORY) this.done.shift();
    });
    this.running.set(id, run);
  }

  private async run(pending: PendingHostRequest): Promise<void> {
    const { request } = pending;
    const about = { request: request.id, kind: request.kind, volume: request.volume ? `${request.tenant}/${request.volume}` : undefined, from: request.from };
    if (Date.parse(request.deadline) <= Date.now()) {
      this.o.log.warn(about, 'host request arrived past its deadline: not started (its requester gave up)');
      return;
    }
    const handler = this.handlers.get(request.kind);
    let result: { ok: boolean; error?: string; code?: string; result?: Record<string, unknown> };
    if (!handler) {
      result = { ok: false, code: 'UNKNOWN_KIND', error: `this volplugin does not handle ${request.kind} requests (an older version?)` };
    } else {
      const started = Date.now();
      try {
        const value = await handler(request);
        result = { ok: true, ...(value ? { result: value } : {}) };
        this.o.log.info({ ...about, ms: Date.now() - started }, 'host request done');
      } catch (err) {
        const code = (err as { code?: unknown }).code;
        result = { ok: false, code: typeof code === 'string' ? code : 'FAILED', error: messageOf(err) };
        this.o.log.warn({ ...about, err: result.error, ms: Date.now() - started }, 'host request failed');
      }
    }
    const delivered = await this.o.store.answerHostRequest(pending, result).catch((err: unknown) => {
      this.o.log.warn({ ...about, err: messageOf(err) }, 'could not answer a host request');
      return false;
    });
    if (!delivered) this.o.log.warn(about, 'host request was withdrawn before its answer could be given');
  }
}
