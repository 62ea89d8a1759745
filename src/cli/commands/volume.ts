// volcli volume: create, get, list, list-all, resize, remove, force-remove. Its runtime and snapshot
// subcommands are runtime.ts and snapshot.ts. Resize and remove run as operations on the master:
// volcli follows them with a progress bar (progress.ts) unless --no-wait.

import type { Command } from 'commander';
import { DRIVER_OPTION_KEYS, parseDriverOptions } from '../../policy/options.js';
import { formatSize } from '../../policy/units.js';
import { optOption, optionPairs, tenantName, volumeRef } from '../args.js';
import type { Act } from '../context.js';
import * as out from '../output.js';
import { finish, noWaitOption } from '../progress.js';

/** Adds `volume` and its own subcommands; returns it for runtime.ts and snapshot.ts. */
export function volumeCommands(program: Command, act: Act): Command {
  const volume = program.command('volume').description('manage volumes');

  volume
    .command('create')
    .description("create a volume from its tenant's policy, as docker volume create does (same options: no-op)")
    .argument('<tenant/volume>', 'volume to create')
    .addOption(optOption())
    .addHelpText('after', `\nOptions (--opt): ${DRIVER_OPTION_KEYS.join(', ')}\nExample: volcli volume create tenant1/db --opt size=10GB --opt snapshots=false`)
    .action(
      act(async (ctx, ref) => {
        const { tenant: t, volume: v } = volumeRef(ref!);
        const values = optionPairs(ctx.opts.opt, parseDriverOptions);
        const { volume: record, created } = await (await ctx.master()).createVolume(t, v, values);
        const what = created ? 'created' : 'exists with these options:';
        ctx.print(`${what} ${t}/${v}: ${formatSize(record.options.sizeBytes)} ${record.options.filesystem} in ${record.pool}/${record.image}\n`, { created, volume: record });
      }),
    );

  volume
    .command('get')
    .description("print a volume's configuration")
    .argument('<tenant/volume>', 'volume')
    .action(
      act(async (ctx, ref) => {
        const { tenant: t, volume: v } = volumeRef(ref!);
        const record = await (await ctx.records()).getVolume(t, v);
        ctx.print(out.formatVolume(record), record);
      }),
    );

  volume
    .command('list')
    .description("list a tenant's volumes")
    .argument('<tenant>', 'tenant name')
    .action(
      act(async (ctx, name) => {
        const volumes = await (await ctx.records()).listVolumes(tenantName(name!));
        ctx.print(out.formatVolumes(volumes, false), volumes);
      }),
    );

  volume
    .command('list-all')
    .description('list every volume of every tenant')
    .action(
      act(async (ctx) => {
        const volumes = await (await ctx.records()).listVolumes();
        ctx.print(out.formatVolumes(volumes, true), volumes);
      }),
    );

  volume
    .command('resize')
    .description('grow a volume to SIZE: its image and, where it is mounted, its filesystem while its containers run (volumes never shrink)')
    .argument('<tenant/volume>', 'volume')
    .argument('<size>', 'the new size: a number and a unit (KB, MB, GB, TB; binary), or a number of MB')
    .addOption(noWaitOption())
    .addHelpText(
      'after',
      '\nThe host that has the volume mounted grows its filesystem (ext4, xfs, btrfs); one that does not answer, or a volume not\n' +
        'mounted, grows it at the next mount. Refused: a size smaller than the volume (SHRINK_REFUSED), beyond the tenant\'s\n' +
        'limits.size or limits.total-size. The same size again finishes an earlier resize. Needs an admin token.\n' +
        'Example: volcli volume resize tenant1/db 20GB',
    )
    .action(
      act(async (ctx, ref, size) => {
        const { tenant: t, volume: v } = volumeRef(ref!);
        const op = await (await ctx.master()).resizeVolume(t, v, size!, { wait: false });
        await finish(ctx, op);
      }),
    );

  volume
    .command('remove')
    .description('remove a volume and its data (image and snapshots); refused while mounted or in use')
    .argument('<tenant/volume>', 'volume')
    .addOption(noWaitOption())
    .action(
      act(async (ctx, ref) => {
        const { tenant: t, volume: v } = volumeRef(ref!);
        const op = await (await ctx.master()).startRemoveVolume(t, v);
        await finish(ctx, op, `removed ${t}/${v}`);
      }),
    );

  volume
    .command('force-remove')
    .description('delete only the records of a volume (volume and mount) from etcd; the image and its data stay')
    .argument('<tenant/volume>', 'volume')
    .action(
      act(async (ctx, ref) => {
        const { tenant: t, volume: v } = volumeRef(ref!);
        await (await ctx.records()).forceRemoveVolume(t, v);
        ctx.print(`removed the records of ${t}/${v} (the image was left alone)\n`, { removed: `${t}/${v}`, recordsOnly: true });
      }),
    );

  return volume;
}
