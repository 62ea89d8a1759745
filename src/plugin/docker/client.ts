// The few Docker Engine API calls volplugin makes: which containers use a volume (the Mount
// request does not say), where their cgroups are, and the start events that trigger applying rate
// limits. Every call has a deadline; the socket comes from --docker, DOCKER_HOST or the default.

import { request, type IncomingMessage } from 'node:http';

export interface DockerMount {
  Type?: string;
  Name?: string;
  Driver?: string;
  Destination?: string;
}

export interface DockerContainerSummary {
  Id: string;
  State?: string;
  Mounts?: DockerMount[];
}

export interface DockerContainerDetails {
  Id: string;
  State?: { Running?: boolean; Pid?: number; Status?: string };
  HostConfig?: { CgroupParent?: string };
  Mounts?: DockerMount[];
}

export interface DockerInfo {
  CgroupDriver?: string;
  CgroupVersion?: string;
}

export interface DockerEvent {
  Type?: string;
  Action?: string;
  id?: string;
  Actor?: { ID?: string; Attributes?: Record<string, string> };
}

/** unix:///path, /path or tcp://host:port to where node:http can connect. */
export function dockerEndpoint(address: string): { socketPath?: string; host?: string; port?: number } {
  if (address.startsWith('unix://')) return { socketPath: address.slice('unix://'.length) };
  if (address.startsWith('/')) return { socketPath: address };
  const m = /^(?:tcp|http):\/\/([^:/]+):(\d+)\/?$/.exec(address);
  if (m) return { host: m[1]!, port: Number(m[2]) };
  throw new Error(`--docker ${JSON.stringify(address)} is neither unix:///path nor tcp://host:port`);
}

export function defaultDockerAddress(env: NodeJS.ProcessEnv = process.env): string {
  return env.DOCKER_HOST && env.DOCKER_HOST !== '' ? env.DOCKER_HOST : 'unix:///var/run/docker.sock';
}

export class DockerClient {
  private readonly endpoint: ReturnType<typeof dockerEndpoint>;

  constructor(
    readonly address: string,
    private readonly timeoutMs = 5_000,
  ) {
    this.endpoint = dockerEndpoint(address);
  }

  private async get<T>(path: string, signal?: AbortSignal): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const req = request(
        { ...this.endpoint, path, method: 'GET', headers: { accept: 'application/json', host: 'docker' }, timeout: this.timeoutMs, signal },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('error', reject);
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString('utf8');
            if ((res.statusCode ?? 500) >= 300) {
              reject(new Error(`Docker API GET ${path} answered ${res.statusCode}: ${text.slice(0, 200).trim()}`));
              return;
            }
            try {
              resolve(JSON.parse(text) as T);
            } catch (err) {
              reject(new Error(`Docker API GET ${path} answered with something other than JSON: ${(err as Error).message}`));
            }
          });
        },
      );
      req.on('timeout', () => req.destroy(new Error(`Docker API at ${this.address} did not answer GET ${path} within ${this.timeoutMs} ms`)));
      req.on('error', (err) => reject(new Error(`cannot reach the Docker API at ${this.address}: ${err.message}`)));
      req.end();
    });
  }

  info(signal?: AbortSignal): Promise<DockerInfo> {
    return this.get<DockerInfo>('/info', signal);
  }

  /** Every container (running or not) that mounts the named volume. */
  async containersUsingVolume(name: string, signal?: AbortSignal): Promise<DockerContainerSummary[]> {
    const filters = encodeURIComponent(JSON.stringify({ volume: [name] }));
    const list = await this.get<DockerContainerSummary[]>(`/containers/json?all=1&filters=${filters}`, signal);
    // The filter also matches a mount destination of that name: keep only real uses of the volume.
    return list.filter((c) => (c.Mounts ?? []).some((m) => m.Type === 'volume' && m.Name === name));
  }

  /** Every container with at least one volume of `driver`. */
  async containersWithDriver(driver: string, signal?: AbortSignal): Promise<DockerContainerSummary[]> {
    const list = await this.get<DockerContainerSummary[]>('/containers/json?all=1', signal);
    return list.filter((c) => (c.Mounts ?? []).some((m) => m.Type === 'volume' && m.Driver === driver));
  }

  inspect(id: string, signal?: AbortSignal): Promise<DockerContainerDetails> {
    return this.get<DockerContainerDetails>(`/containers/${encodeURIComponent(id)}/json`, signal);
  }

  /**
   * Streams container events until `signal` aborts; `onEvent` gets each one. Resolves when the
   * stream ends (dockerd restarted, or aborted); the caller reconnects.
   */
  async streamEvents(onEvent: (event: DockerEvent) => void, signal: AbortSignal): Promise<void> {
    const filters = encodeURIComponent(JSON.stringify({ type: ['container'], event: ['create', 'start', 'die', 'destroy'] }));
    await new Promise<void>((resolve, reject) => {
      const req = request(
        { ...this.endpoint, path: `/events?filters=${filters}`, method: 'GET', headers: { host: 'docker' }, signal },
        (res: IncomingMessage) => {
          if ((res.statusCode ?? 500) >= 300) {
            res.resume();
            reject(new Error(`Docker API /events answered ${res.statusCode}`));
            return;
          }
          let buffer = '';
          res.setEncoding('utf8');
          res.on('data', (chunk: string) => {
            buffer += chunk;
            let nl: number;
            while ((nl = buffer.indexOf('\n')) >= 0) {
              const line = buffer.slice(0, nl).trim();
              buffer = buffer.slice(nl + 1);
              if (!line) continue;
              try {
                onEvent(JSON.parse(line) as DockerEvent);
              } catch {
                // a line that is not an event: ignore
              }
            }
          });
          res.on('end', () => resolve());
          res.on('error', (err) => (signal.aborted ? resolve() : reject(err)));
        },
      );
      req.on('error', (err) => (signal.aborted ? resolve() : reject(new Error(`cannot reach the Docker API at ${this.address}: ${err.message}`))));
      req.end();
    });
  }
}
