// Test certificates as an operator makes them with openssl: a CA, and a certificate for 127.0.0.1
// and localhost that it signed (key mode 600), for volmaster's --tls-cert/--tls-key.
import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';

const exec = promisify(execFile);

export interface TestCertificates {
  ca: string;
  cert: string;
  key: string;
}

/** Makes ca.pem, master.pem and master.key in `dir`. */
export async function makeCertificates(dir: string): Promise<TestCertificates> {
  const openssl = (...args: string[]) => exec('openssl', args, { cwd: dir, timeout: 60_000 });
  await openssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2', '-subj', '/CN=volplugin test CA');
  await openssl('req', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'master.key', '-out', 'master.csr', '-subj', '/CN=volmaster');
  writeFileSync(path.join(dir, 'san.ext'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\n');
  await openssl('x509', '-req', '-in', 'master.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'master.pem', '-days', '2', '-extfile', 'san.ext');
  const key = path.join(dir, 'master.key');
  await exec('chmod', ['600', key]);
  return { ca: path.join(dir, 'ca.pem'), cert: path.join(dir, 'master.pem'), key };
}
