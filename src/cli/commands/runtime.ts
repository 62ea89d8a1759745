// volcli volume runtime: a volume's snapshot and rate-limit settings, changed without remount.

import type { Command } from 'commander';
import { RUNTIME_OPTION_KEYS, parseRuntimeOptions } from '../../policy/options.js';
import { UsageError, optOption, optionPairs, volumeRef } from '../args.js';
import type { Act } from '../context.js';
import * as out from '../output.js';

export function runtimeCommands(volume: Command, act: Act): void {
  const runtime = volume.command('runtime').description('snapshot and rate-limit settings of a volume, changed without remount');

  runtime
    .command('get')
    .description("print a volume's runtime options")
    .argument('<tenant/volume>', 'volume')
    .action(
      act(async (ctx, ref) => {
        const { tenant: t, volume: v } = volumeRef(ref!);
        const options = await (await ctx.records()).getRuntime(t, v);
        ctx.print(out.formatRuntimeOptions(options), options);
      }),
    );

  runtime
    .command('set')
    .description("change a volume's runtime options (keys not given keep their value)")
    .argument('<tenant/volume>', 'volume')
    .argument('[key=value...]', 'options, as with --opt')
    .addOption(optOption())
    .addHelpText('after', `\nOptions: ${RUNTIME_OPTION_KEYS.join(', ')}\nExample: volcli volume runtime set tenant1/db --opt rate-limit.write.iops=500 snapshots.keep=5`)
    .action(
      act(async (ctx, ref, ...pairs) => {
        const { tenant: t, volume: v } = volumeRef(ref!);
        const values = optionPairs([...(ctx.opts.opt ?? []), ...pairs], parseRuntimeOptions);
        if (Object.keys(values).length === 0) throw new UsageError(`give at least one --opt KEY=VALUE; keys: ${RUNTIME_OPTION_KEYS.join(', ')}`);
        const options = await (await ctx.master()).setRuntime(t, v, values);
        ctx.print(out.formatRuntimeOptions(options), options);
      }),
    );
}
