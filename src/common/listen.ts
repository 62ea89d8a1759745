// Where a daemon listens (HOST:PORT flags: volmaster's --listen, every daemon's --metrics-listen)
// and whether only this machine can reach that address.

import { InvalidArgumentError } from 'commander';

/** "0.0.0.0:9005", "127.0.0.1:9005", "[::1]:9005", ":9005" -> host and port; `flag` names the flag in the error. */
export function parseListen(value: string, flag = '--listen'): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:[\]]*)):(\d{1,5})$/.exec(value.trim());
  const port = m ? Number(m[3]) : NaN;
  if (!m || port < 1 || port > 65535) {
    throw new InvalidArgumentError(`${flag} ${JSON.stringify(value)} is not HOST:PORT (e.g. 127.0.0.1:9005, 0.0.0.0:9005, [::1]:9005)`);
  }
  return { host: m[1] ?? (m[2] || '0.0.0.0'), port };
}

/** True when only this machine can connect to `host`. */
export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\./.test(host) || host === '::ffff:127.0.0.1';
}
