// volcli audit: the audit trail, every change made through the API (who, when, what, how it ended;
// src/master/audit.ts writes it). With --follow it keeps printing new entries until interrupted.
// Admin tokens only (it names every token and what it did).

import type { Command } from 'commander';
import { tenantName } from '../args.js';
import type { Context, Act } from '../context.js';
import * as out from '../output.js';
import type { AuditEntry } from '../../state/records.js';
import { count } from './operation.js';

/** How often --follow asks for new entries. */
const FOLLOW_POLL_MS = 1_000;
/** A pending entry this old is printed as pending (its master stopped before answering); younger ones wait for their outcome. */
const PENDING_GRACE_MS = 60_000;

export function auditCommands(program: Command, act: Act): void {
  program
    .command('audit')
    .description('show the audit trail: every change made through the API, who made it, when, and how it ended (oldest first)')
    .option('--limit <n>', 'the newest N entries (1-9999, default 100)')
    .option('--since <time>', 'entries from this time on (ISO 8601, e.g. 2026-11-30T12:00:00Z)')
    .option('--tenant <name>', 'only entries about this tenant')
    .option('--follow', 'keep printing new entries as they complete (Ctrl-C stops); with --json one JSON object per line', false)
    .addHelpText(
      'after',
      '\nOUTCOME is ok (2xx), refused (4xx, with the error code), failed (5xx) or pending (no answer was recorded: the master stopped).\n' +
        'The trail keeps the newest 10,000 entries for 30 days. Needs an admin token.',
    )
    .action(
      act(async (ctx) => {
        const tenant = ctx.opts.tenant === undefined ? undefined : tenantName(ctx.opts.tenant);
        const first = await (await ctx.master()).listAudit({ limit: count(ctx.opts.limit, 100), since: ctx.opts.since, tenant });
        if (!ctx.opts.follow) {
          ctx.print(out.formatAudit(first), first);
          return;
        }
        await follow(ctx, first, tenant);
      }),
    );
}

/**
 * Prints entries as they complete, forever: each once, in order. An entry still pending holds the
 * cursor (entries after it print, and it prints when its outcome is there), unless it is older
 * than PENDING_GRACE_MS (its master stopped; it is shown pending). Before the cursor first moves,
 * polls start at the first entry shown (or after the newest entry of the whole trail).
 */
async function follow(ctx: Context, first: AuditEntry[], tenant: string | undefined): Promise<never> {
  const api = await ctx.master();
  const printed = new Set<string>();
  const floor = first[0];
  const newest = floor ? undefined : (await api.listAudit({ limit: 1 }))[0]?.id;
  let cursor: string | undefined;
  let header = !ctx.opts.json;
  const show = (entries: AuditEntry[]) => {
    let blocked = false;
    const fresh: AuditEntry[] = [];
    for (const e of entries) {
      if (floor && e.id < floor.id) continue;
      if (!printed.has(e.id)) {
        if (e.outcome === 'pending' && Date.now() - Date.parse(e.at) < PENDING_GRACE_MS) {
          blocked = true;
          continue;
        }
        fresh.push(e);
        printed.add(e.id);
      }
      if (!blocked) cursor = e.id;
    }
    for (const id of printed) if (cursor !== undefined && id <= cursor) printed.delete(id);
    if (fresh.length === 0) return;
    if (ctx.opts.json) {
      ctx.io.stdout(fresh.map((e) => `${JSON.stringify(e)}\n`).join(''));
    } else {
      const text = out.formatAudit(fresh);
      ctx.io.stdout(header ? text : text.slice(text.indexOf('\n') + 1));
      header = false;
    }
  };
  show(first);
  for (;;) {
    await new Promise((resolve) => setTimeout(resolve, FOLLOW_POLL_MS));
    const from = cursor ? { after: cursor } : floor ? { since: new Date(Date.parse(floor.at) - 1_000).toISOString() } : newest ? { after: newest } : {};
    show(await api.listAudit({ ...from, tenant, limit: 1000 }));
  }
}
