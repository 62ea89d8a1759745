// volcli mount: inspect mounts (volplugin on each host mounts and unmounts) and force-remove the
// record of a host that is gone.

import type { Command } from 'commander';
import { volumeRef } from '../args.js';
import type { Act } from '../context.js';
import { joinMounts } from '../mounts.js';
import * as out from '../output.js';

export function mountCommands(program: Command, act: Act): void {
  const mount = program.command('mount').description('inspect mounts (volplugin on each host mounts and unmounts)');

  mount
    .command('list')
    .description('list every mount: the mount locks joined with what the holding hosts report, then warnings and host problems')
    .action(
      act(async (ctx) => {
        const records = await ctx.records();
        const [locks, reports] = await Promise.all([records.listMounts(), records.listHosts()]);
        const listing = joinMounts(locks, reports);
        ctx.print(out.formatMounts(listing), listing);
      }),
    );

  mount
    .command('get')
    .description("print a volume's mount")
    .argument('<tenant/volume>', 'volume')
    .action(
      act(async (ctx, ref) => {
        const { tenant: t, volume: v } = volumeRef(ref!);
        const record = await (await ctx.records()).getMount(t, v);
        ctx.print(out.formatMount(record), record);
      }),
    );

  mount
    .command('force-remove')
    .description('delete a mount record without unmounting (for a host that is gone)')
    .argument('<tenant/volume>', 'volume')
    .action(
      act(async (ctx, ref) => {
        const { tenant: t, volume: v } = volumeRef(ref!);
        const removed = await (await ctx.records()).forceRemoveMount(t, v);
        ctx.print(`removed the mount record of ${t}/${v} (held by ${removed.host})\n`, removed);
      }),
    );
}
