// volcli token: create, list and revoke API tokens (admin), and whoami. One token per host (role
// host, what volplugin needs), per monitoring system (read-only) or per admin; the master keeps only
// their SHA-256, so a token is shown once, when it is created (or written to --file, mode 600).

import { open, rm } from 'node:fs/promises';
import { Option, type Command } from 'commander';
import { compileSchema } from '../../common/schema.js';
import { CreateTokenBody } from '../../api/schemas.js';
import { ROLES } from '../../state/schemas.js';
import { UsageError } from '../args.js';
import type { Act } from '../context.js';
import * as out from '../output.js';

const tokenRequest = compileSchema(CreateTokenBody);

/** Opens `path` for the token: a new file only, mode 600 (so that no token lands in a file others can read). */
async function newSecretFile(path: string) {
  try {
    return await open(path, 'wx', 0o600);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') throw new UsageError(`--file ${path} exists; remove it or choose another path (a token file is never overwritten)`);
    throw new UsageError(`--file ${path}: cannot create it (${code ?? 'error'})`);
  }
}

export function tokenCommands(program: Command, act: Act): void {
  const token = program.command('token').description('API tokens: one per host or monitoring system (admin only), and whoami');

  token
    .command('create')
    .description('create a token; prints it once (the master keeps only its SHA-256), or writes it to --file')
    .requiredOption('--name <name>', 'its name, e.g. the host it is for')
    .addOption(new Option('--role <role>', 'admin: everything; provisioner: what the CSI controller needs (volumes with their data, snapshots, attachments); host: what volplugin needs; read-only: GETs').choices(ROLES).makeOptionMandatory())
    .option('--file <path>', 'write the token to this new file (mode 600) instead of printing it')
    .addHelpText('after', '\nExample: volcli token create --role host --name node3 --file /etc/volplugin/host-token')
    .action(
      act(async (ctx) => {
        const request = { name: ctx.opts.name, role: ctx.opts.role };
        const problem = tokenRequest.problem(request);
        if (problem) throw new UsageError(`--${problem.field || 'name'}: ${problem.message}`);
        const file = ctx.opts.file ? await newSecretFile(ctx.opts.file) : null;
        try {
          const created = await (await ctx.records()).createToken(request.name!, request.role!);
          if (file) {
            await file.writeFile(`${created.token}\n`);
            await file.close();
            const { token: _secret, ...shown } = created;
            ctx.print(`created token ${created.name} (role ${created.role}) in ${ctx.opts.file} (mode 600)\n`, shown);
          } else {
            ctx.print(`created token ${created.name} (role ${created.role}); it is shown only this once:\n${created.token}\n`, created);
          }
        } catch (err) {
          if (file) {
            await file.close().catch(() => undefined);
            await rm(ctx.opts.file!, { force: true });
          }
          throw err;
        }
      }),
    );

  token
    .command('list')
    .description('list the tokens: name, role, when and by whom created (never the secrets)')
    .action(
      act(async (ctx) => {
        const tokens = await (await ctx.records()).listTokens();
        ctx.print(out.formatTokens(tokens), tokens);
      }),
    );

  token
    .command('revoke')
    .description('revoke a token: refused at once by the master that revokes it, by every master within 5 s')
    .argument('<name>', 'token name (see volcli token list)')
    .action(
      act(async (ctx, name) => {
        const revoked = await (await ctx.records()).revokeToken(name!);
        ctx.print(`revoked token ${revoked.name} (role ${revoked.role})\n`, revoked);
      }),
    );

  token
    .command('whoami')
    .description('who the master takes you for: your token name and role')
    .action(
      act(async (ctx) => {
        const caller = await (await ctx.master()).whoami();
        ctx.print(`${caller.name} (role ${caller.role})\n`, caller);
      }),
    );
}
