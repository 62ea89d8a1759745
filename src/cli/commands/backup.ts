// volcli volume backup: list, take, restore, verify (docs/backups.md). Always through the master,
// which reaches the tenant's backup target. Take and restore run as operations on the master:
// volcli follows them with a progress bar in bytes (progress.ts) unless --no-wait.

import { InvalidArgumentError, type Command } from 'commander';
import { parseDriverOptions } from '../../policy/options.js';
import { formatSize } from '../../policy/units.js';
import { optOption, optionPairs, volumeRef } from '../args.js';
import type { BackupEntryBody, BackupRestoreResultBody } from '../../api/backups.js';
import type { Act } from '../context.js';
import * as out from '../output.js';
import { finish, followOperation, noWaitOption } from '../progress.js';

/** --at: an ISO time, checked here so that a typo is a usage error, not a request. */
function isoTime(value: string): string {
  const ms = Date.parse(value);
  if (!/^\d{4}-\d\d-\d\dT/.test(value) || Number.isNaN(ms)) throw new InvalidArgumentError(`--at must be an ISO time such as 2026-12-01T12:00:00Z, got ${JSON.stringify(value)}`);
  return new Date(ms).toISOString();
}

export function backupCommands(volume: Command, act: Act): void {
  const backup = volume
    .command('backup')
    .description("backups of a volume to its tenant's target (a directory or a second Ceph cluster)")
    .addHelpText('after', '\nThe target, schedule and hook are set in the tenant policy (default-options.backup); see docs/backups.md.');

  backup
    .command('list')
    .description("list a volume's backups, oldest first (read from the target: works for a volume that is gone)")
    .argument('<tenant/volume>', 'volume')
    .action(
      act(async (ctx, ref) => {
        const { tenant: t, volume: v } = volumeRef(ref!);
        const list = await (await ctx.master()).listBackups(t, v);
        ctx.print(out.formatBackups(list), list);
      }),
    );

  backup
    .command('take')
    .description('take a backup now: incremental from the last one, or full when there is none (or its chain is full)')
    .argument('<tenant/volume>', 'volume')
    .addOption(noWaitOption())
    .addHelpText('after', '\nShows how many bytes are done while it runs (volcli operation show ID --follow from elsewhere).')
    .action(
      act(async (ctx, ref) => {
        const { tenant: t, volume: v } = volumeRef(ref!);
        const started = await (await ctx.master()).startBackup(t, v);
        if (ctx.opts.wait === false) return finish(ctx, started); // prints the operation's id
        const b = (await followOperation(ctx, started)).result as BackupEntryBody;
        ctx.print(`took ${b.kind} backup ${b.name} of ${t}/${v}: ${b.bytes} bytes in ${(b.ms / 1000).toFixed(1)} s (${b.location})\n`, b);
      }),
    );

  backup
    .command('restore')
    .description('restore a backup into the volume (refused while mounted; its data and snapshots are replaced) or, with --into, into a new volume')
    .argument('<tenant/volume>', 'the volume whose backups to use')
    .option('--backup <name>', 'the backup to restore (default: the newest)')
    .option('--at <time>', 'restore the newest backup taken at or before this ISO time', isoTime)
    .option('--into <tenant/volume>', 'a new volume to restore into, under its tenant\'s policy')
    .addOption(optOption())
    .addOption(noWaitOption())
    .addHelpText('after', '\nExamples:\n  volcli volume backup restore tenant1/db\n  volcli volume backup restore tenant1/db --at 2026-12-01T12:00:00Z --into tenant1/db-copy')
    .action(
      act(async (ctx, ref) => {
        const { tenant: t, volume: v } = volumeRef(ref!);
        const opts = ctx.opts as typeof ctx.opts & { backup?: string; at?: string; into?: string };
        const into = opts.into === undefined ? undefined : { ...volumeRef(opts.into), options: optionPairs(ctx.opts.opt, parseDriverOptions) };
        const started = await (await ctx.master()).startRestore(t, v, { backup: opts.backup, at: opts.at, into });
        if (ctx.opts.wait === false) return finish(ctx, started); // prints the operation's id
        const r = (await followOperation(ctx, started)).result as BackupRestoreResultBody;
        const where = r.created ? `new volume ${r.tenant}/${r.volume}` : `${r.tenant}/${r.volume}`;
        ctx.print(`restored backup ${r.backup} of ${t}/${v} into ${where} (${formatSize(r.sizeBytes)}, ${r.pool}/${r.image}) in ${(r.ms / 1000).toFixed(1)} s\n`, r);
      }),
    );

  backup
    .command('verify')
    .description('read every backup of a volume back and check it (chains, sizes, checksums, streams); exit code 1 when one cannot be restored')
    .argument('<tenant/volume>', 'volume')
    .action(
      act(async (ctx, ref) => {
        const { tenant: t, volume: v } = volumeRef(ref!);
        const report = await (await ctx.master()).verifyBackups(t, v);
        ctx.print(out.formatVerify(report), report);
        if (!report.ok) throw Object.assign(new Error(`backups of ${t}/${v} failed verification`), { code: 'BACKUP_CHAIN_BROKEN' });
      }),
    );
}
