// `volplugin csi` processes for the CSI integration tests (started from dist/ like the other
// daemons, see plugin-harness.ts) and a gRPC client of the driver's socket, speaking as a CO does:
// every call returns its response or its gRPC status code, never throws on a refusal.
import path from 'node:path';
import { credentials, loadPackageDefinition, type Client, type ServiceClientConstructor, type ServiceError } from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import { LOADER_OPTIONS, PROTO_FILE } from '../../src/csi/proto.js';
import { bin, hostAgentArgs, Proc, sleep, uniq, untilServing, type DaemonPlacement, type TestMaster } from './plugin-harness.js';

/**
 * A decoded CSI message as the tests read it: field access without a type per message (the tests
 * assert the values; a wrong path fails the assertion).
 */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Message = Record<string, any>;

export type Reply = { code: number; details: string; response: Message };

type Unary = (request: unknown, options: { deadline: number }, callback: (err: ServiceError | null, response: Message) => void) => void;

type Service = 'Identity' | 'Controller' | 'Node';

/** A CO's side of the socket: one gRPC client per service. */
export class CsiClient {
  private readonly clients: Record<Service, Client>;

  constructor(readonly socket: string) {
    const pkg = loadPackageDefinition(loadSync(PROTO_FILE, LOADER_OPTIONS)) as unknown as { csi: { v1: Record<Service, ServiceClientConstructor> } };
    const make = (s: Service) => new pkg.csi.v1[s](`unix://${socket}`, credentials.createInsecure());
    this.clients = { Identity: make('Identity'), Controller: make('Controller'), Node: make('Node') };
  }

  /** One unary call; code 0 and the response, or the status code and its message. */
  call(service: Service, method: string, request: Record<string, unknown> = {}, timeoutMs = 180_000): Promise<Reply> {
    const client = this.clients[service] as unknown as Record<string, Unary>;
    return new Promise((resolve) => {
      client[method]!.call(this.clients[service], request, { deadline: Date.now() + timeoutMs }, (err, response) => {
        resolve(err ? { code: err.code, details: err.details, response: {} } : { code: 0, details: '', response });
      });
    });
  }

  close(): void {
    for (const c of Object.values(this.clients)) c.close();
  }
}

export interface CsiOptions extends DaemonPlacement {
  label: string;
  root: string;
  master: TestMaster;
  mode: 'controller' | 'node' | 'all';
  /** Default: the master's (admin) token. */
  tokenFile?: string;
  lockTtl?: number;
}

/** One `volplugin csi` process with its own socket, mount root and state dir under root/label. */
export class TestCsi {
  readonly socket: string;
  readonly dir: string;
  readonly stateDir: string;
  readonly mountRoot: string;
  proc: Proc;
  client: CsiClient;
  private starts = 0;

  constructor(readonly options: CsiOptions) {
    this.dir = path.join(options.root, options.label);
    this.socket = path.join(this.dir, `csi-${uniq()}.sock`);
    this.stateDir = path.join(this.dir, 'state');
    this.mountRoot = path.join(this.dir, 'mnt');
    this.proc = new Proc(`csi-${options.label}`, path.join(this.dir, 'csi.log'));
    this.client = new CsiClient(this.socket);
  }

  static async start(options: CsiOptions): Promise<TestCsi> {
    const csi = new TestCsi(options);
    await csi.start();
    return csi;
  }

  async start(): Promise<void> {
    const o = this.options;
    this.proc = new Proc(`csi-${o.label}`, path.join(this.dir, `csi.${this.starts++}.log`));
    await this.proc.spawn(
      [
        bin('plugin'), 'csi',
        '--endpoint', `unix://${this.socket}`,
        '--mode', o.mode,
        ...hostAgentArgs({ ...o, mountRoot: this.mountRoot, stateDir: this.stateDir }),
        '--lock-ttl', String(o.lockTtl ?? 30),
        '--fence-seconds', '300',
        '--converge-seconds', '1',
        '--debug',
        ...(o.extraArgs ?? []),
      ],
      o.env,
    );
    this.client.close();
    this.client = new CsiClient(this.socket);
    await untilServing(this.proc, `volplugin csi ${o.label}`, 'answer Probe', async () => (await this.client.call('Identity', 'Probe', {}, 2_000)).code === 0, 40_000);
  }

  call(service: Service, method: string, request: Record<string, unknown> = {}): Promise<Reply> {
    return this.client.call(service, method, request);
  }

  /** Its node id (NodeGetInfo). */
  async nodeId(): Promise<string> {
    const reply = await this.call('Node', 'NodeGetInfo');
    if (reply.code !== 0) throw new Error(`NodeGetInfo: ${reply.details}`);
    return reply.response.node_id as string;
  }

  async stop(): Promise<void> {
    this.client.close();
    await this.proc.stop();
  }

  async kill9(): Promise<void> {
    this.client.close();
    await this.proc.kill9();
  }

  logs(): Promise<string> {
    return this.proc.logs();
  }
}

/** Calls until the answer's code is not `code` (a refusal that a lease expiry lifts), up to `ms`. */
export async function retryWhile(code: number, call: () => Promise<Reply>, ms: number): Promise<Reply> {
  const deadline = Date.now() + ms;
  let reply = await call();
  while (reply.code === code && Date.now() < deadline) {
    await sleep(500);
    reply = await call();
  }
  return reply;
}
