// Starts the real services every integration and e2e test runs against — a one-node Ceph, an etcd
// and a dockerd, all on loopback under .sandbox-test/ — for the integration and e2e projects, and stops them after,
// also when tests fail. A run of only unit tests (`--project unit`) starts nothing.
import type { TestProject } from 'vitest/node';
import {
  sandbox,
  startEtcd,
  testCephConf,
  testDockerExecRoot,
  testDockerSock,
  testEtcdUrl,
  testPorts,
  testRoot,
} from './sandbox.js';

export default async function setup(project: TestProject) {
  // Every project inherits this setup; the services are shared, so later projects reuse them.
  if (project.name === 'unit') return;
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
  console.log(`test services up in ${Date.now() - started} ms (Ceph, etcd, dockerd under ${testRoot})`);

  return async () => {
    if (process.env.VOLPLUGIN_TEST_KEEP) return;
    await sandbox('down', testRoot);
  };
}
