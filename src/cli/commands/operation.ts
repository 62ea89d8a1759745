// volcli operation: the long operations a master runs (resize, remove with data, the flatten of a
// copy) and how far they are. Through the master only (operations are the master's).

import type { Command } from 'commander';
import { UsageError } from '../args.js';
import type { Act } from '../context.js';
import * as out from '../output.js';
import { followOperation } from '../progress.js';

export function operationCommands(program: Command, act: Act): void {
  const operation = program.command('operation').description('long operations (resize, remove, copy) and their progress');

  operation
    .command('list')
    .description('list the newest operations first, with their state')
    .option('--limit <n>', 'how many (1-9999, default 50)')
    .action(
      act(async (ctx) => {
        const ops = await (await ctx.master()).listOperations(count(ctx.opts.limit, 50));
        ctx.print(out.formatOperations(ops), ops);
      }),
    );

  operation
    .command('show')
    .description('show one operation; with --follow, its progress until it ends (exit code 1 if it failed)')
    .argument('<id>', 'operation id (from volcli operation list, or printed by --no-wait)')
    .option('--follow', 'show its progress until it ends', false)
    .action(
      act(async (ctx, id) => {
        let op = await (await ctx.master()).getOperation(id!);
        if (ctx.opts.follow) op = await followOperation(ctx, op);
        ctx.print(out.formatOperation(op), op);
      }),
    );
}

/** A --limit value: 1 to 9999 (what the API takes). */
export function count(text: string | undefined, fallback: number): number {
  if (text === undefined) return fallback;
  const n = Number(text);
  if (!/^[1-9][0-9]{0,3}$/.test(text) || !Number.isInteger(n)) throw new UsageError(`--limit must be a number from 1 to 9999, got ${JSON.stringify(text)}`);
  return n;
}
