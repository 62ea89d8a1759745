// The CSI driver as an orchestrator drives it, over its unix sockets, against the real master,
// etcd and Ceph: one controller (`volplugin csi --mode controller`, a provisioner token) and two
// nodes (`--mode node`, hosts "nodea" and "nodeb"). The whole lifecycle (create, publish, stage,
// publish, write, unpublish, unstage, the other node, snapshot, volume from snapshot, expand,
// delete); a node killed with -9 whose volume is taken over by the other node, fencing its Ceph
// client; and the invalid requests the spec names, each with its code and changing nothing.
import { open, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { status } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { blocklisted, cleanUpRun, directWrite, leftoversBelow, mountsAt, rbd } from '../helpers/plugin-ceph.js';
import { retryWhile, TestCsi, type Reply } from '../helpers/csi-harness.js';
import { startMaster, testPolicy, testRun, type TestMaster } from '../helpers/plugin-harness.js';

const { run, tenant, root, pool } = testRun('csi', 'csi-lifecycle');
const TTL = 4;
const MiB = 1024 * 1024;

let master: TestMaster;
let controller: TestCsi;
let a: TestCsi;
let b: TestCsi;
const fenced: string[] = [];

const MOUNT = { mount: { fs_type: '', mount_flags: [] }, access_mode: { mode: 'SINGLE_NODE_WRITER' } };
const MULTI = { mount: { fs_type: 'xfs', mount_flags: [] }, access_mode: { mode: 'SINGLE_NODE_MULTI_WRITER' } };

const ok = (reply: Reply) => {
  expect(reply.details, 'a call that should succeed').toBe('');
  expect(reply.code).toBe(status.OK);
  return reply.response;
};

/** Writes a file and syncs it: a snapshot of a mounted volume has what reached the disk (crash-consistent). */
async function writeSynced(file: string, text: string): Promise<void> {
  const handle = await open(file, 'w');
  try {
    await handle.writeFile(text);
    await handle.sync();
  } finally {
    await handle.close();
  }
}

const dirs = (node: TestCsi, name: string) => ({ staging: path.join(node.dir, 'staging', name), target: path.join(node.dir, 'pods', name, 'mount') });

/** ControllerPublish + NodeStage + NodePublish of `id` on `node`, as a CO runs a pod there. */
async function attach(node: TestCsi, id: string, name: string, cap: object = MOUNT): Promise<{ staging: string; target: string }> {
  const d = dirs(node, name);
  ok(await controller.call('Controller', 'ControllerPublishVolume', { volume_id: id, node_id: await node.nodeId(), volume_capability: cap }));
  ok(await node.call('Node', 'NodeStageVolume', { volume_id: id, staging_target_path: d.staging, volume_capability: cap }));
  ok(await node.call('Node', 'NodePublishVolume', { volume_id: id, staging_target_path: d.staging, target_path: d.target, volume_capability: cap }));
  return d;
}

/** NodeUnpublish + NodeUnstage + ControllerUnpublish, as a CO does when the pod is gone. */
async function detach(node: TestCsi, id: string, name: string): Promise<void> {
  const d = dirs(node, name);
  ok(await node.call('Node', 'NodeUnpublishVolume', { volume_id: id, target_path: d.target }));
  ok(await node.call('Node', 'NodeUnstageVolume', { volume_id: id, staging_target_path: d.staging }));
  ok(await controller.call('Controller', 'ControllerUnpublishVolume', { volume_id: id, node_id: await node.nodeId() }));
  expect(await mountsAt(d.staging)).toBe(0);
  expect(await mountsAt(d.target)).toBe(0);
}

const images = async () => (await rbd('ls', pool)).split('\n').filter((i) => i.startsWith(`${tenant}.`)).sort();

beforeAll(async () => {
  master = await startMaster(root, `/volplugin-test-${run}`);
  // xfs for the volumes that grow: resize2fs cannot grow a mounted ext4 here (no CAP_SYS_RESOURCE), xfs_growfs can.
  await master.api.uploadTenant(tenant, { ...testPolicy({ filesystems: { ext4: 'mkfs.ext4 -q -m0 %', xfs: 'mkfs.xfs -q %' } }), limits: { size: '1GB' } });
  const token = await master.api.createToken(`csi-${run}`, 'provisioner');
  const tokenFile = path.join(root, 'provisioner-token');
  await writeFile(tokenFile, token.token, { mode: 0o600 });
  [controller, a, b] = await Promise.all([
    TestCsi.start({ label: 'controller', root, master, mode: 'controller', tokenFile }),
    TestCsi.start({ label: 'nodea', root, master, mode: 'node', lockTtl: TTL }),
    TestCsi.start({ label: 'nodeb', root, master, mode: 'node', lockTtl: TTL }),
  ]);
}, 120_000);

afterAll(async () => {
  await Promise.all([controller?.stop(), a?.stop(), b?.stop()]);
  await master?.stop();
  const left = await cleanUpRun({ tenant, root, pool, fenced });
  expect(left).toEqual([]);
});

describe('the CSI driver over its sockets, on the real cluster', () => {
  it('identity: name, version, capabilities and readiness', async () => {
    const info = ok(await controller.call('Identity', 'GetPluginInfo'));
    expect(info.name).toBe('csi.volplugin.io');
    expect(info.vendor_version).toMatch(/^\d+\.\d+\.\d+/);
    const caps = ok(await controller.call('Identity', 'GetPluginCapabilities')).capabilities as { service?: { type: string } }[];
    expect(caps.some((c) => c.service?.type === 'CONTROLLER_SERVICE')).toBe(true);
    expect(ok(await a.call('Identity', 'Probe')).ready?.value).toBe(true);
    const node = ok(await a.call('Node', 'NodeGetCapabilities')).capabilities.map((c: { rpc: { type: string } }) => c.rpc.type);
    expect(node).toEqual(expect.arrayContaining(['STAGE_UNSTAGE_VOLUME', 'GET_VOLUME_STATS', 'EXPAND_VOLUME']));
    expect(await a.nodeId()).not.toBe(await b.nodeId());
    // A node-only process serves no Controller: gRPC answers UNIMPLEMENTED.
    expect((await a.call('Controller', 'ControllerGetCapabilities')).code).toBe(status.UNIMPLEMENTED);
  });

  it('the whole lifecycle: create, two nodes in turn, snapshot, volume from snapshot, expand, delete', async () => {
    const name = `pvc-${run}-life`;
    const create = { name, capacity_range: { required_bytes: String(320 * MiB) }, volume_capabilities: [MOUNT], parameters: { tenant, filesystem: 'xfs' } };
    const volume = ok(await controller.call('Controller', 'CreateVolume', create)).volume;
    expect(volume.volume_id).toBe(`${tenant}.${name}`);
    expect(Number(volume.capacity_bytes)).toBe(320 * MiB);
    // Idempotent by name: the same request gives the same volume; another size under the name is refused.
    expect(ok(await controller.call('Controller', 'CreateVolume', create)).volume.volume_id).toBe(volume.volume_id);
    expect((await controller.call('Controller', 'CreateVolume', { ...create, capacity_range: { required_bytes: String(400 * MiB) } })).code).toBe(status.ALREADY_EXISTS);
    const id = volume.volume_id as string;
    expect(ok(await controller.call('Controller', 'ValidateVolumeCapabilities', { volume_id: id, volume_capabilities: [MOUNT] })).confirmed).toBeTruthy();

    // Node A: stage, publish at two targets (one read-only), write.
    const da = await attach(a, id, name, MULTI);
    await writeFile(path.join(da.target, 'hello'), 'from nodea\n');
    const ro = path.join(a.dir, 'pods', `${name}-ro`, 'mount');
    ok(await a.call('Node', 'NodePublishVolume', { volume_id: id, staging_target_path: da.staging, target_path: ro, volume_capability: MULTI, readonly: true }));
    expect(await readFile(path.join(ro, 'hello'), 'utf8')).toBe('from nodea\n');
    await expect(writeFile(path.join(ro, 'nope'), 'x')).rejects.toThrow(/EROFS|read-only/);
    // Publishing again the same way is OK; at the same target read-only now is ALREADY_EXISTS.
    ok(await a.call('Node', 'NodePublishVolume', { volume_id: id, staging_target_path: da.staging, target_path: da.target, volume_capability: MULTI }));
    expect((await a.call('Node', 'NodePublishVolume', { volume_id: id, staging_target_path: da.staging, target_path: da.target, volume_capability: MULTI, readonly: true })).code).toBe(
      status.ALREADY_EXISTS,
    );
    const stats = ok(await a.call('Node', 'NodeGetVolumeStats', { volume_id: id, volume_path: da.target }));
    const bytes = stats.usage.find((u: { unit: string }) => u.unit === 'BYTES');
    expect(Number(bytes.total)).toBeGreaterThan(250 * MiB);
    expect(Number(bytes.used)).toBeGreaterThan(0);
    // Published to A: B cannot have it, and it cannot be deleted.
    expect((await controller.call('Controller', 'ControllerPublishVolume', { volume_id: id, node_id: await b.nodeId(), volume_capability: MOUNT })).code).toBe(
      status.FAILED_PRECONDITION,
    );
    expect((await controller.call('Controller', 'DeleteVolume', { volume_id: id })).code).toBe(status.FAILED_PRECONDITION);
    ok(await a.call('Node', 'NodeUnpublishVolume', { volume_id: id, target_path: ro }));
    await detach(a, id, name);
    ok(await a.call('Node', 'NodeUnstageVolume', { volume_id: id, staging_target_path: da.staging })); // again: OK

    // Node B sees what A wrote.
    const db = await attach(b, id, name);
    expect(await readFile(path.join(db.target, 'hello'), 'utf8')).toBe('from nodea\n');
    await writeSynced(path.join(db.target, 'hello'), 'from nodeb\n');

    // Snapshots, listed in pages.
    const snap = (n: string) => controller.call('Controller', 'CreateSnapshot', { source_volume_id: id, name: `snap-${run}-${n}` });
    const s1 = ok(await snap('1')).snapshot;
    expect(s1.ready_to_use).toBe(true);
    expect(ok(await snap('1')).snapshot.snapshot_id).toBe(s1.snapshot_id);
    const s2 = ok(await snap('2')).snapshot;
    const page1 = ok(await controller.call('Controller', 'ListSnapshots', { source_volume_id: id, max_entries: 1 }));
    expect(page1.entries).toHaveLength(1);
    expect(page1.next_token).not.toBe('');
    const page2 = ok(await controller.call('Controller', 'ListSnapshots', { source_volume_id: id, max_entries: 1, starting_token: page1.next_token }));
    expect(page2.entries).toHaveLength(1);
    expect(page2.next_token).toBe('');
    expect([page1.entries[0].snapshot.snapshot_id, page2.entries[0].snapshot.snapshot_id].sort()).toEqual([s1.snapshot_id, s2.snapshot_id].sort());
    expect(ok(await controller.call('Controller', 'ListSnapshots', { snapshot_id: s1.snapshot_id })).entries).toHaveLength(1);

    // A volume from the snapshot, larger than it, made while node B holds the source.
    const bClient = (await master.api.listMounts()).find((m) => m.tenant === tenant && m.volume === name)!.clientAddress!;
    const copyName = `pvc-${run}-copy`;
    const copy = ok(
      await controller.call('Controller', 'CreateVolume', {
        name: copyName,
        capacity_range: { required_bytes: String(400 * MiB) },
        volume_capabilities: [MOUNT],
        parameters: { tenant },
        volume_content_source: { snapshot: { snapshot_id: s1.snapshot_id } },
      }),
    ).volume;
    expect(Number(copy.capacity_bytes)).toBe(400 * MiB);
    expect(copy.content_source.snapshot.snapshot_id).toBe(s1.snapshot_id);

    // Expansion online: the controller grows the image, the node the filesystem.
    const expanded = ok(await controller.call('Controller', 'ControllerExpandVolume', { volume_id: id, capacity_range: { required_bytes: String(480 * MiB) } }));
    expect(Number(expanded.capacity_bytes)).toBe(480 * MiB);
    expect(expanded.node_expansion_required).toBe(true);
    const grown = ok(await b.call('Node', 'NodeExpandVolume', { volume_id: id, volume_path: db.target, capacity_range: { required_bytes: String(480 * MiB) } }));
    expect(Number(grown.capacity_bytes)).toBe(480 * MiB);
    const after = ok(await b.call('Node', 'NodeGetVolumeStats', { volume_id: id, volume_path: db.target }));
    expect(Number(after.usage.find((u: { unit: string }) => u.unit === 'BYTES').total)).toBeGreaterThan(400 * MiB);
    expect(await readFile(path.join(db.target, 'hello'), 'utf8')).toBe('from nodeb\n');
    // Shrinking is refused.
    expect((await controller.call('Controller', 'ControllerExpandVolume', { volume_id: id, capacity_range: { required_bytes: String(MiB), limit_bytes: String(320 * MiB) } })).code).toBe(
      status.OUT_OF_RANGE,
    );
    await detach(b, id, name);

    // The copy on node A (after B let go: xfs refuses a second mount of one filesystem UUID on one
    // kernel, and both "nodes" are this machine): it has the snapshot's data, fills its size, and
    // its first mount fenced nobody (the source's holder note is not copied with the image).
    const dc = await attach(a, copy.volume_id, copyName);
    expect(await readFile(path.join(dc.target, 'hello'), 'utf8')).toBe('from nodeb\n');
    expect(await blocklisted(bClient)).toBe(false);
    const copyStats = ok(await a.call('Node', 'NodeGetVolumeStats', { volume_id: copy.volume_id, volume_path: dc.target }));
    expect(Number(copyStats.usage.find((u: { unit: string }) => u.unit === 'BYTES').total)).toBeGreaterThan(330 * MiB);
    await detach(a, copy.volume_id, copyName);

    // Delete: the CO's snapshots first (the volume keeps them otherwise), then the volumes; again is OK.
    expect((await controller.call('Controller', 'DeleteVolume', { volume_id: id })).code).toBe(status.FAILED_PRECONDITION);
    ok(await controller.call('Controller', 'DeleteVolume', { volume_id: copy.volume_id }));
    for (const s of [s1, s2]) ok(await controller.call('Controller', 'DeleteSnapshot', { snapshot_id: s.snapshot_id }));
    ok(await controller.call('Controller', 'DeleteSnapshot', { snapshot_id: s1.snapshot_id }));
    ok(await controller.call('Controller', 'DeleteVolume', { volume_id: id }));
    ok(await controller.call('Controller', 'DeleteVolume', { volume_id: id }));
    expect(await images()).not.toContain(id);
    expect(await images()).not.toContain(copy.volume_id);
    expect(await leftoversBelow(root)).toEqual([]);
  }, 300_000);

  it('a node killed with -9: the other node takes the volume over once its lease expires, fencing its Ceph client', async () => {
    const name = `pvc-${run}-takeover`;
    const id = ok(await controller.call('Controller', 'CreateVolume', { name, volume_capabilities: [MOUNT], parameters: { tenant } })).volume.volume_id as string;
    const da = await attach(a, id, name);
    expect(await directWrite(da.target)).toBe(true);
    const held = (await master.api.listMounts()).find((m) => m.tenant === tenant && m.volume === name)!;
    expect(held.host).toBe('nodea');
    await a.kill9();
    // A's rbd-fuse still runs: without fencing its writes would land on the volume B takes.
    expect(await directWrite(da.target)).toBe(true);
    const bId = await b.nodeId();
    const publish = () => controller.call('Controller', 'ControllerPublishVolume', { volume_id: id, node_id: bId, volume_capability: MOUNT });
    const first = await publish();
    expect(first.code, first.details).toBe(status.FAILED_PRECONDITION);
    expect(ok(await retryWhile(status.FAILED_PRECONDITION, publish, (TTL + 15) * 1000))).toBeTruthy();
    const db = dirs(b, name);
    ok(await b.call('Node', 'NodeStageVolume', { volume_id: id, staging_target_path: db.staging, volume_capability: MOUNT }));
    ok(await b.call('Node', 'NodePublishVolume', { volume_id: id, staging_target_path: db.staging, target_path: db.target, volume_capability: MOUNT }));
    fenced.push(held.clientAddress!);
    expect(await blocklisted(held.clientAddress!)).toBe(true);
    expect(await directWrite(da.target)).toBe(false);
    expect(await directWrite(db.target)).toBe(true);

    // A comes back: its CO unpublishes and unstages there, which only cleans up; B keeps the volume.
    await a.start();
    ok(await a.call('Node', 'NodeUnpublishVolume', { volume_id: id, target_path: da.target }));
    ok(await a.call('Node', 'NodeUnstageVolume', { volume_id: id, staging_target_path: da.staging }));
    expect(await mountsAt(da.target)).toBe(0);
    expect(await mountsAt(da.staging)).toBe(0);
    expect((await master.api.listMounts()).find((m) => m.tenant === tenant && m.volume === name)?.host).toBe('nodeb');
    await detach(b, id, name);
    ok(await controller.call('Controller', 'DeleteVolume', { volume_id: id }));
    expect(await leftoversBelow(root)).toEqual([]);
  }, 180_000);

  it('invalid requests get the spec\'s codes and change nothing', async () => {
    const name = `pvc-${run}-bad`;
    const id = ok(await controller.call('Controller', 'CreateVolume', { name, volume_capabilities: [MOUNT], parameters: { tenant } })).volume.volume_id as string;
    const snapshot = ok(await controller.call('Controller', 'CreateSnapshot', { source_volume_id: id, name: `snap-${run}-bad` })).snapshot.snapshot_id as string;
    const aId = await a.nodeId();
    const before = { images: await images(), attachments: await master.api.listAttachments(), snapshots: await master.api.listSnapshots(tenant, name) };
    const missing = `${tenant}.nothing-${run}`;
    const staging = path.join(a.dir, 'staging', 'bad');
    const target = path.join(a.dir, 'pods', 'bad', 'mount');
    const BLOCK = { block: {}, access_mode: { mode: 'SINGLE_NODE_WRITER' } };
    const cases: [string, 'Controller' | 'Node', string, Record<string, unknown>, number][] = [
      ['CreateVolume without a name', 'Controller', 'CreateVolume', { volume_capabilities: [MOUNT], parameters: { tenant } }, status.INVALID_ARGUMENT],
      ['CreateVolume without capabilities', 'Controller', 'CreateVolume', { name: `${name}-x`, parameters: { tenant } }, status.INVALID_ARGUMENT],
      ['CreateVolume of block access', 'Controller', 'CreateVolume', { name: `${name}-x`, volume_capabilities: [BLOCK], parameters: { tenant } }, status.INVALID_ARGUMENT],
      ['CreateVolume of a multi-node mode', 'Controller', 'CreateVolume', { name: `${name}-x`, volume_capabilities: [{ ...MOUNT, access_mode: { mode: 'MULTI_NODE_MULTI_WRITER' } }], parameters: { tenant } }, status.INVALID_ARGUMENT],
      ['CreateVolume without a tenant', 'Controller', 'CreateVolume', { name: `${name}-x`, volume_capabilities: [MOUNT], parameters: {} }, status.INVALID_ARGUMENT],
      ['CreateVolume of an unknown tenant', 'Controller', 'CreateVolume', { name: `${name}-x`, volume_capabilities: [MOUNT], parameters: { tenant: `no${run}` } }, status.INVALID_ARGUMENT],
      ['CreateVolume with a bad option', 'Controller', 'CreateVolume', { name: `${name}-x`, volume_capabilities: [MOUNT], parameters: { tenant, bogus: '1' } }, status.INVALID_ARGUMENT],
      ['CreateVolume with required > limit', 'Controller', 'CreateVolume', { name: `${name}-x`, volume_capabilities: [MOUNT], parameters: { tenant }, capacity_range: { required_bytes: String(64 * MiB), limit_bytes: String(32 * MiB) } }, status.OUT_OF_RANGE],
      ['CreateVolume over the tenant\'s size limit', 'Controller', 'CreateVolume', { name: `${name}-x`, volume_capabilities: [MOUNT], parameters: { tenant }, capacity_range: { required_bytes: String(4096 * MiB) } }, status.OUT_OF_RANGE],
      ['CreateVolume from a missing snapshot', 'Controller', 'CreateVolume', { name: `${name}-x`, volume_capabilities: [MOUNT], parameters: { tenant }, volume_content_source: { snapshot: { snapshot_id: `${id}@csi-none` } } }, status.NOT_FOUND],
      ['CreateVolume: the name with other parameters', 'Controller', 'CreateVolume', { name, volume_capabilities: [MOUNT], parameters: { tenant, filesystem: 'xfs' } }, status.ALREADY_EXISTS],
      ['DeleteVolume without an id', 'Controller', 'DeleteVolume', {}, status.INVALID_ARGUMENT],
      ['ControllerPublish without a node', 'Controller', 'ControllerPublishVolume', { volume_id: id, volume_capability: MOUNT }, status.INVALID_ARGUMENT],
      ['ControllerPublish without a capability', 'Controller', 'ControllerPublishVolume', { volume_id: id, node_id: aId }, status.INVALID_ARGUMENT],
      ['ControllerPublish of a missing volume', 'Controller', 'ControllerPublishVolume', { volume_id: missing, node_id: aId, volume_capability: MOUNT }, status.NOT_FOUND],
      ['ControllerPublish to a missing node', 'Controller', 'ControllerPublishVolume', { volume_id: id, node_id: 'no-such-node', volume_capability: MOUNT }, status.NOT_FOUND],
      ['ControllerUnpublish without an id', 'Controller', 'ControllerUnpublishVolume', { node_id: aId }, status.INVALID_ARGUMENT],
      ['ValidateVolumeCapabilities of a missing volume', 'Controller', 'ValidateVolumeCapabilities', { volume_id: missing, volume_capabilities: [MOUNT] }, status.NOT_FOUND],
      ['ValidateVolumeCapabilities without capabilities', 'Controller', 'ValidateVolumeCapabilities', { volume_id: id }, status.INVALID_ARGUMENT],
      ['CreateSnapshot without a source', 'Controller', 'CreateSnapshot', { name: `snap-${run}-x` }, status.INVALID_ARGUMENT],
      ['CreateSnapshot without a name', 'Controller', 'CreateSnapshot', { source_volume_id: id }, status.INVALID_ARGUMENT],
      ['CreateSnapshot of a missing volume', 'Controller', 'CreateSnapshot', { source_volume_id: missing, name: `snap-${run}-x` }, status.NOT_FOUND],
      ['DeleteSnapshot without an id', 'Controller', 'DeleteSnapshot', {}, status.INVALID_ARGUMENT],
      ['ListSnapshots with a token it never gave', 'Controller', 'ListSnapshots', { starting_token: 'bogus' }, status.ABORTED],
      ['ControllerExpand without a range', 'Controller', 'ControllerExpandVolume', { volume_id: id }, status.INVALID_ARGUMENT],
      ['ControllerExpand of a missing volume', 'Controller', 'ControllerExpandVolume', { volume_id: missing, capacity_range: { required_bytes: String(64 * MiB) } }, status.NOT_FOUND],
      ['NodeStage without a capability', 'Node', 'NodeStageVolume', { volume_id: id, staging_target_path: staging }, status.INVALID_ARGUMENT],
      ['NodeStage without a staging path', 'Node', 'NodeStageVolume', { volume_id: id, volume_capability: MOUNT }, status.INVALID_ARGUMENT],
      ['NodeStage of a missing volume', 'Node', 'NodeStageVolume', { volume_id: missing, staging_target_path: staging, volume_capability: MOUNT }, status.NOT_FOUND],
      ['NodeStage of a volume not published here', 'Node', 'NodeStageVolume', { volume_id: id, staging_target_path: staging, volume_capability: MOUNT }, status.FAILED_PRECONDITION],
      ['NodePublish without a target', 'Node', 'NodePublishVolume', { volume_id: id, staging_target_path: staging, volume_capability: MOUNT }, status.INVALID_ARGUMENT],
      ['NodePublish of an unstaged volume', 'Node', 'NodePublishVolume', { volume_id: id, staging_target_path: staging, target_path: target, volume_capability: MOUNT }, status.FAILED_PRECONDITION],
      ['NodeUnpublish without a target', 'Node', 'NodeUnpublishVolume', { volume_id: id }, status.INVALID_ARGUMENT],
      ['NodeUnstage without a path', 'Node', 'NodeUnstageVolume', { volume_id: id }, status.INVALID_ARGUMENT],
      ['NodeGetVolumeStats of a path it does not hold', 'Node', 'NodeGetVolumeStats', { volume_id: id, volume_path: target }, status.NOT_FOUND],
      ['NodeExpand of a volume not here', 'Node', 'NodeExpandVolume', { volume_id: id, volume_path: target }, status.NOT_FOUND],
    ];
    const wrong: string[] = [];
    for (const [what, service, method, request, code] of cases) {
      const reply = await (service === 'Controller' ? controller : a).call(service, method, request);
      if (reply.code !== code) wrong.push(`${what}: got ${status[reply.code]} (${reply.details}), want ${status[code]}`);
      else expect(reply.details, what).not.toBe('');
    }
    expect(wrong).toEqual([]);
    expect(await images()).toEqual(before.images);
    expect(await master.api.listAttachments()).toEqual(before.attachments);
    expect(await master.api.listSnapshots(tenant, name)).toEqual(before.snapshots);
    expect(await mountsAt(staging)).toBe(0);
    ok(await controller.call('Controller', 'DeleteSnapshot', { snapshot_id: snapshot }));
    ok(await controller.call('Controller', 'DeleteVolume', { volume_id: id }));
  }, 120_000);
});
