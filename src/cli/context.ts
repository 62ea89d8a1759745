// What every volcli command gets: the process around it (CliIO), the options given (global and the
// command's own), lazily made clients (the master's API, the record backend) and print().

import { InvalidArgumentError } from 'commander';
import { ApiClient } from '../api/client.js';
import { VERSION } from '../api/version.js';
import { etcdSecurity, type EtcdSecurityOptions } from '../common/flags.js';
import { UsageError } from './args.js';
import { MasterBackend, type RecordBackend } from './backend.js';
import * as out from './output.js';

export interface CliIO {
  stdout: (text: string) => void;
  stderr: (text: string) => void;
  /** Reads all of stdin (tenant upload). */
  readStdin: () => Promise<string>;
  /** True when stdin is a terminal (nothing piped in). */
  stdinIsTTY: boolean;
  /** A terminal to draw progress bars on (stderr when it is one); without it, progress is plain lines on stderr. */
  progress?: NodeJS.WriteStream;
  env: NodeJS.ProcessEnv;
}

/** volcli's own options (program.ts declares them; the etcd security flags come from common/flags.ts). */
export interface GlobalOptions extends EtcdSecurityOptions {
  master: string;
  etcd?: string[];
  prefix: string;
  tokenFile?: string;
  tlsCa?: string;
  json: boolean;
  timeout: number;
}

/** Options some commands declare for themselves (commands/*.ts). */
export interface CommandOptions {
  opt?: string[];
  name?: string;
  group?: string;
  revision?: string;
  role?: string;
  file?: string;
  wait?: boolean;
  follow?: boolean;
  since?: string;
  tenant?: string;
  limit?: string;
}

/** Per-invocation state: lazily created clients, closed at the end. */
export class Context {
  private api: ApiClient | null = null;
  private backend: RecordBackend | null = null;

  constructor(
    readonly io: CliIO,
    readonly opts: GlobalOptions & CommandOptions,
  ) {}

  async master(): Promise<ApiClient> {
    if (!this.api) {
      this.api = await ApiClient.fromOptions({
        master: this.opts.master,
        tokenFile: this.opts.tokenFile,
        caFile: this.opts.tlsCa,
        timeoutMs: this.opts.timeout * 1000,
        userAgent: `volcli/${VERSION}`,
      });
    }
    return this.api;
  }

  /** Record reads and record-only writes: etcd with --etcd, else the master. */
  async records(): Promise<RecordBackend> {
    if (!this.backend) {
      if (this.opts.etcd?.length) {
        const security = usage(() => etcdSecurity(this.opts, this.opts.etcd!));
        const [{ EtcdBackend }, { openEtcd }] = await Promise.all([import('./etcd-backend.js'), import('../common/etcd.js')]);
        this.backend = new EtcdBackend(await openEtcd({ etcd: this.opts.etcd, etcdSecurity: security }, this.opts.timeout * 1000), this.opts.prefix);
      } else {
        this.backend = new MasterBackend(await this.master());
      }
    }
    return this.backend;
  }

  print(human: string, value: unknown): void {
    this.io.stdout(this.opts.json ? out.json(value) : human);
  }

  async close(): Promise<void> {
    await this.backend?.close().catch(() => undefined);
    await this.api?.close().catch(() => undefined);
  }
}

/** A flag check's InvalidArgumentError as volcli's usage error (exit code 2, the message printed). */
function usage<T>(check: () => T): T {
  try {
    return check();
  } catch (err) {
    if (err instanceof InvalidArgumentError) throw new UsageError(err.message);
    throw err;
  }
}

/** A command's work, given the context and its positional arguments. */
export type Action = (ctx: Context, ...args: string[]) => Promise<void>;

/** Turns an Action into a commander action handler (program.ts makes it: it owns the context). */
export type Act = (fn: Action) => (...args: unknown[]) => Promise<void>;
