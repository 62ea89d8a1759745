// volcli volume snapshot: take (of one volume, or of several at one instant with --group), list,
// remove, copy into a new volume, roll back, and group list/remove/rollback/copy. Always through
// the master (they touch Ceph).

import type { Command } from 'commander';
import { parseDriverOptions } from '../../policy/options.js';
import { optOption, optionPairs, UsageError, volumeRef } from '../args.js';
import { assertName } from '../../policy/names.js';
import type { Act } from '../context.js';
import * as out from '../output.js';
import { finish, followOperation, noWaitOption } from '../progress.js';

/** A group name as volcli takes it (the rules of a volume name). */
function groupName(text: string): string {
  try {
    return assertName('volume', text);
  } catch (err) {
    throw new UsageError(`--group: ${(err as Error).message.replace(/^volume name/, 'group name').replace(/; write TENANT\/VOLUME.*$/, '')}`);
  }
}

/** TENANT/GROUP as volcli takes it: a volume reference's rules, its errors naming a group. */
function groupRef(text: string): { tenant: string; group: string } {
  try {
    const { tenant, volume } = volumeRef(text);
    return { tenant, group: volume };
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    throw new UsageError(err.message.replace(/volume name/g, 'group name').replace(/TENANT\/VOLUME/g, 'TENANT/GROUP'));
  }
}

export function snapshotCommands(volume: Command, act: Act): void {
  const snapshot = volume.command('snapshot').description('snapshots of a volume');

  snapshot
    .command('take')
    .description('take a snapshot now (named manual-<time> unless --name is given); of several volumes at one instant with --group')
    .argument('<tenant/volume...>', 'volume; with --group, every volume of the group (one tenant, one pool)')
    .option('--name <name>', 'snapshot name')
    .option('--group <group>', "take one crash-consistent snapshot of all the volumes at one instant, as the tenant's consistency group GROUP")
    .action(
      act(async (ctx, ...refs) => {
        const volumes = refs.map((r) => volumeRef(r));
        const group = ctx.opts.group;
        if (group === undefined) {
          if (volumes.length !== 1) throw new UsageError('several volumes are snapshotted together only as a group: add --group NAME');
          const { tenant: t, volume: v } = volumes[0]!;
          const snap = await (await ctx.master()).takeSnapshot(t, v, ctx.opts.name);
          ctx.print(`took snapshot ${snap.name} of ${t}/${v}\n`, snap);
          return;
        }
        const tenants = [...new Set(volumes.map((r) => r.tenant))];
        if (tenants.length !== 1) throw new UsageError(`the volumes of a group are of one tenant; got ${tenants.join(', ')}`);
        const t = tenants[0]!;
        const snap = await (await ctx.master()).takeGroupSnapshot(t, groupName(group), volumes.map((r) => r.volume), ctx.opts.name);
        ctx.print(`took group snapshot ${snap.name} of ${t}/${snap.group}: ${snap.volumes.map((v) => `${t}/${v}`).join(' ')}\n`, snap);
      }),
    );

  snapshot
    .command('list')
    .description("list a volume's snapshots, oldest first")
    .argument('<tenant/volume>', 'volume')
    .action(
      act(async (ctx, ref) => {
        const { tenant: t, volume: v } = volumeRef(ref!);
        const snaps = await (await ctx.master()).listSnapshots(t, v);
        ctx.print(out.formatSnapshots(snaps), snaps);
      }),
    );

  snapshot
    .command('remove')
    .description('remove a snapshot')
    .argument('<tenant/volume>', 'volume')
    .argument('<snapshot>', 'snapshot name')
    .action(
      act(async (ctx, ref, name) => {
        const { tenant: t, volume: v } = volumeRef(ref!);
        await (await ctx.master()).removeSnapshot(t, v, name!);
        ctx.print(`removed snapshot ${name} of ${t}/${v}\n`, { removed: name });
      }),
    );

  snapshot
    .command('copy')
    .description('copy a snapshot into a new volume')
    .argument('<tenant/volume>', 'source volume')
    .argument('<snapshot>', 'snapshot name')
    .argument('<new-tenant/new-volume>', 'the volume to create')
    .addOption(optOption())
    .addOption(noWaitOption())
    .addHelpText('after', '\nThe copy is usable at once (a clone); volcli then follows its flatten, which makes it independent of the snapshot (--no-wait: not).')
    .action(
      act(async (ctx, ref, name, target) => {
        const { tenant: t, volume: v } = volumeRef(ref!);
        const to = volumeRef(target!);
        const values = optionPairs(ctx.opts.opt, parseDriverOptions);
        const api = await ctx.master();
        const { volume: record, operation } = await api.startCopySnapshot(t, v, name!, { ...to, options: values });
        const copied = `copied ${t}/${v}@${name} to ${to.tenant}/${to.volume} (${record.pool}/${record.image})`;
        if (!operation || ctx.opts.wait === false) {
          ctx.print(`${copied}${operation ? `; flattening: operation ${operation}` : ''}\n`, record);
          return;
        }
        const ended = await followOperation(ctx, await api.getOperation(operation));
        ctx.print(`${copied}; ${ended.message}\n`, record);
      }),
    );

  snapshot
    .command('rollback')
    .description('roll a volume back to a snapshot (refused while mounted)')
    .argument('<tenant/volume>', 'volume')
    .argument('<snapshot>', 'snapshot name')
    .action(
      act(async (ctx, ref, name) => {
        const { tenant: t, volume: v } = volumeRef(ref!);
        await (await ctx.master()).rollbackSnapshot(t, v, name!);
        ctx.print(`rolled ${t}/${v} back to ${name}\n`, { rolledBack: `${t}/${v}`, snapshot: name });
      }),
    );

  const group = snapshot.command('group').description("a tenant's consistency groups: snapshots of several volumes at one instant (taken with take --group)");

  group
    .command('list')
    .description("list a group's snapshots and the volumes it holds")
    .argument('<tenant/group>', 'group')
    .action(
      act(async (ctx, ref) => {
        const { tenant: t, group: g } = groupRef(ref!);
        const snaps = await (await ctx.master()).listGroupSnapshots(t, g);
        const text = snaps.map((s) => `${s.name}${s.complete ? '' : ' (incomplete: remove it)'}  ${s.volumes.join(' ')}\n`).join('');
        ctx.print(text, snaps);
      }),
    );

  group
    .command('remove')
    .description('remove a group snapshot (the group goes with its last one, freeing its volumes)')
    .argument('<tenant/group>', 'group')
    .argument('<snapshot>', 'snapshot name')
    .action(
      act(async (ctx, ref, name) => {
        const { tenant: t, group: g } = groupRef(ref!);
        await (await ctx.master()).removeGroupSnapshot(t, g, name!);
        ctx.print(`removed group snapshot ${name} of ${t}/${g}\n`, { removed: name });
      }),
    );

  group
    .command('rollback')
    .description('roll every volume of the group back to a group snapshot, at once (refused while any of them is mounted or open)')
    .argument('<tenant/group>', 'group')
    .argument('<snapshot>', 'group snapshot name')
    .addOption(noWaitOption())
    .addHelpText(
      'after',
      '\nNo host can mount a volume of the group while it runs. Refused, with nothing changed, while any volume of the group is\n' +
        'mounted (stop its containers) or open. Needs an admin token. Exit code 1 with the error on a refusal.',
    )
    .action(
      act(async (ctx, ref, name) => {
        const { tenant: t, group: g } = groupRef(ref!);
        const op = await (await ctx.master()).startGroupRollback(t, g, name!);
        await finish(ctx, op);
      }),
    );

  group
    .command('copy')
    .description("copy one volume's part of a group snapshot into a new volume")
    .argument('<tenant/group>', 'group')
    .argument('<snapshot>', 'group snapshot name')
    .argument('<volume>', 'the volume of the group to copy (of the same tenant)')
    .argument('<new-tenant/new-volume>', 'the volume to create')
    .addOption(optOption())
    .addOption(noWaitOption())
    .addHelpText('after', '\nA full copy (independent of the group snapshot at once), followed as an operation (--no-wait: not). Needs the master on its native backend.')
    .action(
      act(async (ctx, ref, name, member, target) => {
        const { tenant: t, group: g } = groupRef(ref!);
        const to = volumeRef(target!);
        const values = optionPairs(ctx.opts.opt, parseDriverOptions);
        const op = await (await ctx.master()).startGroupMemberCopy(t, g, name!, volumeRef(`${t}/${member!}`).volume, { ...to, options: values });
        await finish(ctx, op);
      }),
    );
}
