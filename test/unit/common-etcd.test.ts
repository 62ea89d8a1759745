// Reading etcd's TLS files and the user's password at start (src/common/etcd.ts): the secrets'
// permissions, what each file must hold, and errors that name the flag. (Against a real etcd with
// TLS and users: test/integration/etcd-secure.test.ts.)
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { etcdClientOptions } from '../../src/common/etcd.js';
import type { EtcdSecurity } from '../../src/common/flags.js';

const CERT = '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n';
const KEY = '-----BEGIN PRIVATE KEY-----\nMIGH\n-----END PRIVATE KEY-----\n';
const none: EtcdSecurity = { ca: null, cert: null, key: null, user: null, passwordFile: null };
let dir: string;
const file = async (name: string, text: string, mode: number) => {
  const p = path.join(dir, name);
  await writeFile(p, text, { mode });
  return p;
};
const failure = (p: Promise<unknown>) => p.then(() => null, (e: Error) => e.message);

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'etcd-options-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('etcdClientOptions', () => {
  it('reads the CA, the certificate and key, and the first line of the password file', async () => {
    const sec: EtcdSecurity = {
      ca: await file('ca.pem', CERT, 0o644),
      cert: await file('c.pem', CERT, 0o644),
      key: await file('k.pem', KEY, 0o640),
      user: 'volplugin',
      passwordFile: await file('pw', 's3cret\nignored\n', 0o600),
    };
    const options = await etcdClientOptions(['https://e:2379'], sec, 1234);
    expect(options).toMatchObject({ endpoints: ['https://e:2379'], timeoutMs: 1234, auth: { user: 'volplugin', password: 's3cret' } });
    expect(options.tls?.ca?.toString()).toBe(CERT);
    expect(options.tls?.key?.toString()).toBe(KEY);
  });

  it('without the flags there is no TLS and no user', async () => {
    const options = await etcdClientOptions(['http://127.0.0.1:2379'], none);
    expect(options.tls).toBeUndefined();
    expect(options.auth).toBeUndefined();
  });

  it('refuses a password file its group or others can read, and a key others can read', async () => {
    const pw = await file('pw-loose', 'x\n', 0o640);
    expect(await failure(etcdClientOptions(['https://e:2379'], { ...none, user: 'u', passwordFile: pw }))).toMatch(
      /the etcd password file .*pw-loose can be read by its group or others \(mode 0640\).*chmod 600/,
    );
    const key = await file('k-loose.pem', KEY, 0o644);
    const cert = await file('c2.pem', CERT, 0o644);
    expect(await failure(etcdClientOptions(['https://e:2379'], { ...none, cert, key }))).toMatch(/the etcd client key .*k-loose.pem can be read by others \(mode 0644\).*chmod o-rwx/);
  });

  it('names the flag of a file that is missing, empty or not PEM', async () => {
    expect(await failure(etcdClientOptions(['https://e:2379'], { ...none, ca: path.join(dir, 'nope.pem') }))).toMatch(/cannot read --etcd-ca .*nope.pem \(ENOENT\); check --etcd-ca/);
    const notPem = await file('ca.txt', 'hello', 0o644);
    expect(await failure(etcdClientOptions(['https://e:2379'], { ...none, ca: notPem }))).toMatch(/--etcd-ca .*ca.txt holds no PEM certificate/);
    const cert = await file('c3.pem', CERT, 0o644);
    const keyNotPem = await file('k3.pem', 'hello', 0o600);
    expect(await failure(etcdClientOptions(['https://e:2379'], { ...none, cert, key: keyNotPem }))).toMatch(/--etcd-key .*k3.pem holds no PEM private key/);
    const empty = await file('pw-empty', '\n', 0o600);
    expect(await failure(etcdClientOptions(['https://e:2379'], { ...none, user: 'u', passwordFile: empty }))).toMatch(/password file .*pw-empty is empty/);
  });
});
