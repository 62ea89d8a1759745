// volcli volume snapshot: take, list, remove, copy into a new volume, roll back. Always through
// the master (they touch Ceph).

import type { Command } from 'commander';
import { parseDriverOptions } from '../../policy/options.js';
import { optOption, optionPairs, volumeRef } from '../args.js';
import type { Act } from '../context.js';
import * as out from '../output.js';
import { followOperation, noWaitOption } from '../progress.js';

export function snapshotCommands(volume: Command, act: Act): void {
  const snapshot = volume.command('snapshot').description('snapshots of a volume');

  snapshot
    .command('take')
    .description('take a snapshot now (named manual-<time> unless --name is given)')
    .argument('<tenant/volume>', 'volume')
    .option('--name <name>', 'snapshot name')
    .action(
      act(async (ctx, ref) => {
        const { tenant: t, volume: v } = volumeRef(ref!);
        const snap = await (await ctx.master()).takeSnapshot(t, v, ctx.opts.name);
        ctx.print(`took snapshot ${snap.name} of ${t}/${v}\n`, snap);
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
}
