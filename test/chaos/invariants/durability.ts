// Every record a writer had acknowledged (written and fsync'd) before a fault must be read back by
// the volume's next holder, intact.

import type { JournalRead } from '../journal.js';
import { violation, type Violation } from './types.js';

export interface SessionClaim {
  session: string;
  /** Host the writer ran on. */
  host: string;
  acked: number;
  /** When the last acknowledgement arrived (ms since epoch), and how the writer ended. */
  lastAckAt?: number | null;
  writerError?: string | null;
}

/** The acknowledged seqs of `claim` that `read` does not hold (at most `limit` listed). */
export function lostRecords(claim: SessionClaim, read: Extract<JournalRead, { ok: true }>, limit = 20): { lost: number; first: number[] } {
  const found = read.sessions[claim.session];
  if (!found) return { lost: claim.acked, first: Array.from({ length: Math.min(claim.acked, limit) }, (_, i) => i + 1) };
  const lostSeqs = found.missing.filter((s) => s <= claim.acked);
  for (let s = found.max + 1; s <= claim.acked; s++) lostSeqs.push(s);
  return { lost: lostSeqs.length, first: lostSeqs.slice(0, limit) };
}

export function checkDurability(name: string, reader: string, claims: readonly SessionClaim[], read: JournalRead): Violation[] {
  if (!read.ok) {
    return [violation('durability', `${reader} could not read ${name}'s records back: ${read.error}`, { claims })];
  }
  const out: Violation[] = [];
  for (const claim of claims) {
    if (claim.acked === 0) continue;
    const { lost, first } = lostRecords(claim, read);
    if (lost > 0) {
      out.push(
        violation('durability', `${reader} misses ${lost} of the ${claim.acked} records ${claim.host} had fsync'd to ${name} (session ${claim.session})`, {
          session: claim.session,
          writer: claim.host,
          reader,
          acked: claim.acked,
          lastAckAt: claim.lastAckAt ? new Date(claim.lastAckAt).toISOString() : null,
          writerError: claim.writerError ?? null,
          found: read.sessions[claim.session] ?? null,
          missingSeqs: first,
        }),
      );
    }
  }
  return out;
}
