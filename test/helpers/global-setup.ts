// Starts the real services every integration and e2e test runs against — a one-node Ceph, an etcd
// and a dockerd, all on loopback under .sandbox-test/ — for the integration and e2e projects, and stops those it started afterwards,
// also when tests fail. A run of only unit tests (`--project unit`) starts nothing.
import type { TestProject } from 'vitest/node';
import {
  sandbox,
  servicesRunning,
  startEtcd,
  testCephConf,
  testDockerExecRoot,
  testDockerSock,
  testEtcdUrl,
  testPorts,
  testRoot,
} from './sandbox.js';

export default async function setup(project: TestProject) {
  // Every project (and the root one) inherits this setup; only these two need services, and they
  // share them: the second finds them running and reuses them.
  if (project.name !== 'integration' && project.name !== 'e2e') return;
  // Services that were already running (another run in this checkout, or VOLPLUGIN_TEST_KEEP) are
  // left running at the end: only what this setup started is stopped.
  const wasRunning = await servicesRunning();
  const started = Date.now();
  await sandbox('ceph-up', testRoot, String(testPorts.monV2), String(testPorts.monV1));
  await startEtcd();
  await sandbox('docker-up', testRoot, testDockerSock, testDockerExecRoot);
  await sandbox('busybox-image', testDockerSock);
  process.env.CEPH_CONF = testCephConf;
  process.env.VOLPLUGIN_TEST_ETCD = testEtcdUrl;
  process.env.VOLPLUGIN_TEST_POOL = 'rbd';
  process.env.VOLPLUGIN_TEST_DOCKER = `unix://${testDockerSock}`;
  process.env.VOLPLUGIN_TEST_ROOT = testRoot;
  // Daemons the tests start serve no metrics unless a test asks (--metrics-listen): their default
  // ports would be shared by parallel runs and by `make up`.
  for (const variable of ['VOLMASTER_METRICS_LISTEN', 'VOLPLUGIN_METRICS_LISTEN', 'VOLSUPERVISOR_METRICS_LISTEN']) process.env[variable] = 'none';
  console.log(`test services up in ${Date.now() - started} ms (Ceph, etcd, dockerd under ${testRoot})`);

  return async () => {
    if (process.env.VOLPLUGIN_TEST_KEEP || wasRunning) return;
    await sandbox('down', testRoot);
  };
}
