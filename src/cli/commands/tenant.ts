// volcli tenant: upload, delete, get, list, history of tenant policies.

import { Option, type Command } from 'commander';
import { parsePolicy } from '../../policy/validate.js';
import { UsageError, tenantName } from '../args.js';
import type { Act } from '../context.js';
import * as out from '../output.js';

function revisionNumber(value: string): string {
  if (!/^[1-9]\d*$/.test(value)) throw new UsageError(`--revision must be a revision number (1, 2, ...), got ${JSON.stringify(value)}`);
  return value;
}

export function tenantCommands(program: Command, act: Act): void {
  const tenant = program.command('tenant').description('manage tenant policies');

  tenant
    .command('upload')
    .description('upload a tenant policy (JSON on stdin); every upload is kept as a new revision')
    .argument('<tenant>', 'tenant name')
    .addHelpText('after', '\nExample: volcli tenant upload tenant1 < tenant1.json')
    .action(
      act(async (ctx, name) => {
        const t = tenantName(name!);
        if (ctx.io.stdinIsTTY) throw new UsageError(`pipe the policy JSON into stdin: volcli tenant upload ${t} < policy.json`);
        const text = await ctx.io.readStdin();
        parsePolicy(text, 'the policy on stdin'); // errors with line and column before any network
        const record = await (await ctx.records()).uploadTenant(t, text);
        ctx.print(`uploaded tenant ${record.name} (revision ${record.revision})\n`, record);
      }),
    );

  tenant
    .command('delete')
    .description('delete a tenant policy (its volumes, mounts and history stay)')
    .argument('<tenant>', 'tenant name')
    .action(
      act(async (ctx, name) => {
        const t = tenantName(name!);
        await (await ctx.records()).deleteTenant(t);
        ctx.print(`deleted tenant ${t}\n`, { deleted: t });
      }),
    );

  tenant
    .command('get')
    .description("print a tenant's policy as JSON (--revision for an older one)")
    .argument('<tenant>', 'tenant name')
    .addOption(new Option('--revision <n>', 'a revision from the history').argParser(revisionNumber))
    .action(
      act(async (ctx, name) => {
        const t = tenantName(name!);
        const revision = ctx.opts.revision;
        const backend = await ctx.records();
        const record = revision ? await backend.getTenantRevision(t, Number(revision)) : await backend.getTenant(t);
        ctx.print(out.json(record.policy), record);
      }),
    );

  tenant
    .command('list')
    .description('list tenants')
    .action(
      act(async (ctx) => {
        const tenants = await (await ctx.records()).listTenants();
        ctx.print(out.formatTenants(tenants), tenants);
      }),
    );

  tenant
    .command('history')
    .description("list every uploaded revision of a tenant's policy")
    .argument('<tenant>', 'tenant name')
    .action(
      act(async (ctx, name) => {
        const revisions = await (await ctx.records()).tenantHistory(tenantName(name!));
        ctx.print(out.formatHistory(revisions), revisions);
      }),
    );

  tenant
    .command('usage')
    .description("a tenant's usage (volumes, creates in progress included, and their sizes) beside its limits")
    .argument('<tenant>', 'tenant name')
    .action(
      act(async (ctx, name) => {
        const usage = await (await ctx.records()).getUsage(tenantName(name!));
        ctx.print(out.formatUsage(usage), usage);
      }),
    );
}
