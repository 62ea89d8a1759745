// The etcd client every component opens from its flags (flags.ts): the TLS files and the user's
// password are read here, once, at start. The password file and the client key are secrets: a
// password file anyone but its owner can read is refused, a key others can read too.

import { readFile } from 'node:fs/promises';
import { EtcdKV, EtcdRefusedError, type EtcdKVOptions } from '../state/etcd.js';
import type { EtcdSecurity } from './flags.js';
import { readSecretFile } from './secret-file.js';

async function readPem(file: string, flag: string, kind: 'CERTIFICATE' | 'PRIVATE KEY', text?: string): Promise<Buffer> {
  let pem = text;
  if (pem === undefined) {
    try {
      pem = await readFile(file, 'utf8');
    } catch (err) {
      throw new Error(`cannot read ${flag} ${file} (${(err as NodeJS.ErrnoException).code ?? 'error'}); check ${flag}`, { cause: err });
    }
  }
  const marker = kind === 'CERTIFICATE' ? /-----BEGIN CERTIFICATE-----/ : /-----BEGIN [A-Z ]*PRIVATE KEY-----/;
  if (!marker.test(pem)) throw new Error(`${flag} ${file} holds no PEM ${kind.toLowerCase()}`);
  return Buffer.from(pem);
}

/** The password in `file`: its first line, without the newline. */
async function readPassword(file: string): Promise<string> {
  const text = await readSecretFile(file, { what: 'the etcd password file', flag: '--etcd-password-file' });
  const password = text.split(/\r?\n/)[0] ?? '';
  if (password === '') throw new Error(`the etcd password file ${file} is empty; write the password of --etcd-user into it`);
  return password;
}

/** EtcdKV's options for `endpoints` and the security flags: the files read and checked. */
export async function etcdClientOptions(endpoints: string[], security: EtcdSecurity, timeoutMs?: number): Promise<EtcdKVOptions> {
  const options: EtcdKVOptions = { endpoints, timeoutMs };
  if (security.ca || security.cert) {
    const keyText = security.key ? await readSecretFile(security.key, { what: 'the etcd client key', flag: '--etcd-key', groupMayRead: true }) : undefined;
    options.tls = {
      ca: security.ca ? await readPem(security.ca, '--etcd-ca', 'CERTIFICATE') : undefined,
      cert: security.cert ? await readPem(security.cert, '--etcd-cert', 'CERTIFICATE') : undefined,
      key: security.key ? await readPem(security.key, '--etcd-key', 'PRIVATE KEY', keyText) : undefined,
    };
  }
  if (security.user && security.passwordFile) {
    options.auth = { user: security.user, password: await readPassword(security.passwordFile) };
  }
  return options;
}

/** How long openEtcd waits for etcd to take the user's password before it goes on without knowing. */
const CREDENTIALS_CHECK_MS = 2_000;

/**
 * An EtcdKV on the configured etcd, with its TLS and user. With a user, the password is tried at
 * once: credentials etcd refuses are an error here (EtcdRefusedError), not at the first use; an
 * etcd that does not answer yet is not (components start while etcd is down).
 */
export async function openEtcd(config: { etcd: string[]; etcdSecurity: EtcdSecurity }, timeoutMs?: number): Promise<EtcdKV> {
  const kv = new EtcdKV(await etcdClientOptions(config.etcd, config.etcdSecurity, timeoutMs));
  if (config.etcdSecurity.user) {
    try {
      await kv.ping(Math.min(CREDENTIALS_CHECK_MS, kv.timeoutMs));
    } catch (err) {
      if (err instanceof EtcdRefusedError) {
        await kv.close();
        throw err;
      }
    }
  }
  return kv;
}
