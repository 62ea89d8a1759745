// volcli host: what each volplugin reports about itself (its mounts, its problems).

import type { Command } from 'commander';
import type { Act } from '../context.js';
import * as out from '../output.js';

export function hostCommands(program: Command, act: Act): void {
  const host = program.command('host').description('what each volplugin reports about itself (mounts, problems)');

  host
    .command('list')
    .description('list the live volplugins and their reports')
    .action(
      act(async (ctx) => {
        const hosts = await (await ctx.records()).listHosts();
        ctx.print(out.formatHosts(hosts), hosts);
      }),
    );

  host
    .command('get')
    .description("print one volplugin's report")
    .argument('<host-id>', 'host id (see volcli host list)')
    .action(
      act(async (ctx, hostId) => {
        const report = await (await ctx.records()).getHost(hostId!);
        ctx.print(out.formatHost(report), report);
      }),
    );
}
