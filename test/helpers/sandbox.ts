// Where the test services live, shared by the global setup and by tests that need to stop or
// restart one of them (e.g. etcd for the 503 test). Ports differ from `make up`'s so both can run.
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import path from 'node:path';

export const repoRoot = fileURLToPath(new URL('../..', import.meta.url));
// VOLPLUGIN_TEST_PORT_OFFSET (below) also gives the services a directory of their own.
export const testRoot = path.join(repoRoot, process.env.VOLPLUGIN_TEST_PORT_OFFSET ? `.sandbox-test-${process.env.VOLPLUGIN_TEST_PORT_OFFSET}` : '.sandbox-test');
export const sandboxScript = path.join(repoRoot, 'scripts', 'sandbox.sh');

/** The storage backend the daemons under test use: the addon once built (make test builds it first). */
export const testBackend = process.env.VOLPLUGIN_TEST_BACKEND ?? (existsSync(path.join(repoRoot, 'build/Release/volplugin_rbd.node')) ? 'native' : 'cli');

// VOLPLUGIN_TEST_PORT_OFFSET shifts every port (and the dockerd paths and the state directory), so
// that a second run can go on beside this one.
const offset = Number(process.env.VOLPLUGIN_TEST_PORT_OFFSET ?? 0);
export const testPorts = {
  monV2: 23300 + offset,
  monV1: 26789 + offset,
  etcd: 23379 + offset,
  etcdPeer: 23380 + offset,
  /** The second etcd, with TLS and users (started by the tests that use it: secureEtcd()). */
  etcdSecure: 23384 + offset,
  etcdSecurePeer: 23385 + offset,
} as const;
export const testEtcdUrl = `http://127.0.0.1:${testPorts.etcd}`;
export const testCephConf = path.join(testRoot, 'ceph', 'ceph.conf');
/** dockerd's socket and exec root: under /run, because unix socket paths are limited to 108 bytes. */
const dockerRunDir = offset ? `/run/volplugin-test-${offset}` : '/run/volplugin-test';
export const testDockerSock = `${dockerRunDir}/docker.sock`;
export const testDockerExecRoot = `${dockerRunDir}/docker-exec`;

const run = promisify(execFile);

/** Runs scripts/sandbox.sh with the given verb; its stderr (progress, errors) is passed through. */
export async function sandbox(...args: string[]): Promise<void> {
  try {
    const { stderr } = await run(sandboxScript, args, { timeout: 180_000, maxBuffer: 16 << 20 });
    if (stderr && process.env.VOLPLUGIN_TEST_VERBOSE) process.stderr.write(stderr);
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`scripts/sandbox.sh ${args.join(' ')} failed:\n${e.stderr ?? e.message}`);
  }
}

export const startEtcd = () => sandbox('etcd-up', testRoot, String(testPorts.etcd), String(testPorts.etcdPeer));

/** Where the secure etcd keeps its certificates and passwords (scripts/sandbox.sh etcd-up --secure). */
const securePki = path.join(testRoot, 'secure', 'etcd', 'pki');

/** An etcd user of the secure etcd: root, volplugin (master, supervisor, volcli) or volplugin-host (volplugin). */
export type SecureEtcdUser = 'root' | 'volplugin' | 'volplugin-host';

export interface SecureEtcd {
  /** https://localhost:PORT (a name, not an IP: Node warns about TLS server names that are IPs). */
  url: string;
  ca: string;
  cert: string;
  key: string;
  passwordFile(user: SecureEtcdUser): string;
  /** The daemon flags for `user`: --etcd and the TLS and user flags. */
  flags(user: SecureEtcdUser): string[];
}

/**
 * Starts (or finds running) the etcd with TLS, client certificates and users that the security
 * tests use, beside the plain one; the global teardown stops it with the rest.
 */
export async function secureEtcd(): Promise<SecureEtcd> {
  await sandbox('etcd-up', path.join(testRoot, 'secure'), String(testPorts.etcdSecure), String(testPorts.etcdSecurePeer), '--secure');
  const etcd: SecureEtcd = {
    url: `https://localhost:${testPorts.etcdSecure}`,
    ca: path.join(securePki, 'ca.pem'),
    cert: path.join(securePki, 'client.pem'),
    key: path.join(securePki, 'client-key.pem'),
    passwordFile: (user) => path.join(securePki, `${user}.password`),
    flags: (user) => [
      '--etcd', etcd.url, '--etcd-ca', etcd.ca, '--etcd-cert', etcd.cert, '--etcd-key', etcd.key,
      '--etcd-user', user, '--etcd-password-file', etcd.passwordFile(user),
    ],
  };
  return etcd;
}
export const stopEtcd = () => sandbox('stop-pid', path.join(testRoot, 'etcd', 'etcd.pid'), 'etcd');

async function pidAlive(pidfile: string): Promise<boolean> {
  return sandbox('pid-alive', pidfile).then(
    () => true,
    () => false,
  );
}

/** True when the test Ceph, etcd and dockerd from an earlier setup are all still running. */
export async function servicesRunning(): Promise<boolean> {
  const alive = await Promise.all(
    [
      path.join(testRoot, 'ceph', 'run', 'mon.a.pid'),
      path.join(testRoot, 'ceph', 'run', 'osd.0.pid'),
      path.join(testRoot, 'etcd', 'etcd.pid'),
      path.join(testRoot, 'docker', 'dockerd.pid'),
    ].map(pidAlive),
  );
  return alive.every(Boolean);
}
