// What volcli prints: aligned tables and key/value blocks for people, JSON for scripts.

import { formatSize } from '../policy/units.js';
import type { AuditEntry, HostReport, MountRecord, OperationRecord, TenantRecord, VolumeRecord } from '../state/records.js';
import { mountWarnings, type MountListing } from './mounts.js';
import type { RuntimeOptions } from '../policy/types.js';
import { runtimeAsOptions } from '../policy/options.js';
import { describeRetention, formatRetention } from '../policy/retention.js';
import type { SnapshotEntry, TenantSummary, TenantUsageBody, TokenSummaryBody } from '../api/schemas.js';
import type { BackupListBody, BackupVerifyBody } from '../api/backups.js';

export function table(headers: string[], rows: string[][]): string {
  if (rows.length === 0) return '';
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  return [line(headers), ...rows.map(line)].join('\n') + '\n';
}

export function keyValues(pairs: Array<[string, string]>): string {
  const width = Math.max(...pairs.map(([k]) => k.length));
  return pairs.map(([k, v]) => `${`${k}:`.padEnd(width + 1)} ${v}`).join('\n') + '\n';
}

const rate = (n: number, unit: string) => (n === 0 ? 'unlimited' : `${n} ${unit}`);

export function formatRuntime(runtime: RuntimeOptions): Array<[string, string]> {
  return [
    [
      'snapshots',
      runtime.snapshots
        ? `every ${runtime.snapshot.frequency}, ${describeRetention(runtime.snapshot.keep)}${runtime.snapshot.consistency === 'fsfreeze' ? ', fsfreeze' : ''}`
        : 'off',
    ],
    ['rate limits', `read ${rate(runtime.rateLimit.readIops, 'IOPS')}, ${rate(runtime.rateLimit.readBps, 'B/s')}; write ${rate(runtime.rateLimit.writeIops, 'IOPS')}, ${rate(runtime.rateLimit.writeBps, 'B/s')}`],
    ...(runtime.backups === undefined ? [] : [['backups', runtime.backups && runtime.backup ? `every ${runtime.backup.frequency}, keep ${runtime.backup.keep}` : 'off'] as [string, string]]),
  ];
}

export function formatRuntimeOptions(runtime: RuntimeOptions): string {
  return keyValues(Object.entries(runtimeAsOptions(runtime)));
}

export function formatVolume(v: VolumeRecord): string {
  const pairs: Array<[string, string]> = [
    ['volume', `${v.tenant}/${v.volume}`],
    ['image', `${v.pool}/${v.image}`],
    ['size', formatSize(v.options.sizeBytes)],
    ['filesystem', `${v.options.filesystem} (${v.formatCommand})`],
    ['ephemeral', String(v.options.ephemeral)],
    ...formatRuntime(v.runtime),
    ['policy revision', String(v.policyRevision)],
    ['created', v.createdAt],
  ];
  if (v.source) pairs.push(['copied from', `${v.source.tenant}/${v.source.volume}@${v.source.snapshot}`]);
  return keyValues(pairs);
}

export function formatVolumes(volumes: VolumeRecord[], withTenant: boolean): string {
  if (volumes.length === 0) return '';
  return table(
    [withTenant ? 'VOLUME' : 'NAME', 'IMAGE', 'SIZE', 'FILESYSTEM', 'SNAPSHOTS', 'CREATED'],
    volumes.map((v) => [
      withTenant ? `${v.tenant}/${v.volume}` : v.volume,
      `${v.pool}/${v.image}`,
      formatSize(v.options.sizeBytes),
      v.options.filesystem,
      v.runtime.snapshots ? `${v.runtime.snapshot.frequency}/${formatRetention(v.runtime.snapshot.keep)}` : 'off',
      v.createdAt,
    ]),
  );
}

export function formatTenants(tenants: TenantSummary[]): string {
  return table(['NAME', 'REVISION', 'UPLOADED'], tenants.map((t) => [t.name, String(t.revision), t.uploadedAt]));
}

export function formatHistory(revisions: TenantRecord[]): string {
  return table(
    ['REVISION', 'UPLOADED', 'POOL', 'SIZE'],
    revisions.map((r) => [
      String(r.revision),
      r.uploadedAt,
      String(r.policy['default-options'].pool ?? ''),
      String(r.policy['default-options'].size ?? '-'),
    ]),
  );
}

/** The joined listing: one line per mount, then a line per warning and per host problem. */
export function formatMounts(listing: MountListing): string {
  const rows = listing.mounts.map((m) => [
    `${m.tenant}/${m.volume}`,
    m.lock ? m.host : `${m.host} (no lock)`,
    m.report?.device || m.lock?.device || '-',
    m.report?.mountpoint || m.lock?.mountpoint || '-',
    m.report ? String(m.report.references) : '-',
    m.lock?.since || '-',
  ]);
  const warnings = mountWarnings(listing);
  return table(['VOLUME', 'HOST', 'DEVICE', 'MOUNTPOINT', 'REFS', 'SINCE'], rows) + warnings.map((w) => `${w}\n`).join('');
}

export function formatHosts(hosts: HostReport[]): string {
  return table(
    ['HOST', 'HOST ID', 'MOUNTS', 'PROBLEMS', 'REPORTED', 'VERSION'],
    hosts.map((h) => [h.host, h.hostId, String(h.mounts.length), String(h.problems.length), h.reportedAt, h.version]),
  );
}

export function formatHost(h: HostReport): string {
  const pairs: Array<[string, string]> = [
    ['host', `${h.host} (${h.hostId})`],
    ['volplugin', `${h.version}, pid ${h.pid}`],
    ['reported', h.reportedAt],
    ['mounts', h.mounts.length === 0 ? 'none' : h.mounts.map((m) => `${m.tenant}/${m.volume} at ${m.mountpoint} (${m.device}, ${m.mapper}, ${m.references} refs)`).join('; ')],
    ['problems', h.problems.length === 0 ? 'none' : h.problems.join('; ')],
  ];
  return keyValues(pairs);
}

export function formatMount(m: MountRecord): string {
  return keyValues([
    ['volume', `${m.tenant}/${m.volume}`],
    ['host', `${m.host} (${m.hostId})`],
    ['mountpoint', m.mountpoint],
    ['device', `${m.device} (${m.mapper})`],
    ['ceph client', m.clientAddress ?? '-'],
    ['lease', m.lease],
    ['since', m.since],
  ]);
}

export function formatSnapshots(snapshots: SnapshotEntry[]): string {
  return table(
    ['NAME', 'ORIGIN', 'CREATED', 'SIZE', 'PROTECTED', 'CLONES'],
    snapshots.map((s) => [s.name, s.origin, s.createdAt ?? '-', formatSize(s.sizeBytes), s.protected ? 'yes' : 'no', s.clones.join(',') || '-']),
  );
}

export function formatBackups(list: BackupListBody): string {
  const rows = table(
    ['NAME', 'KIND', 'PARENT', 'AT', 'SIZE', 'STORED', 'TOOK'],
    list.backups.map((b) => [b.name, b.kind, b.parent ?? '-', b.at, formatSize(b.sizeBytes), formatBytes(b.bytes), `${(b.ms / 1000).toFixed(1)}s`]),
  );
  const lines = [`target: ${list.target}`];
  if (list.lastError) lines.push(`last error (${list.lastError.at}): ${list.lastError.message}`);
  if (list.lastHook && !list.lastHook.ok) lines.push(`last hook failed (${list.lastHook.at}, after ${list.lastHook.backup}): ${list.lastHook.message ?? ''}`);
  return `${lines.join('\n')}\n${list.backups.length > 0 ? rows : 'no backups yet\n'}`;
}

export function formatVerify(report: BackupVerifyBody): string {
  const lines = [`target: ${report.target}`];
  for (const b of report.backups) lines.push(`${b.ok ? 'ok     ' : 'BROKEN '} ${b.name}${b.problems.length > 0 ? `: ${b.problems.join('; ')}` : ''}`);
  for (const p of report.problems) lines.push(`PROBLEM ${p}`);
  lines.push(report.ok ? `all ${report.backups.length} backups are good` : 'some backups cannot be restored (see above)');
  return `${lines.join('\n')}\n`;
}

/** Bytes in the largest unit that keeps a whole number before the point ("10.2 MiB"). */
function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? `${n} B` : `${v.toFixed(1)} ${units[i]}`;
}

export function formatTokens(tokens: TokenSummaryBody[]): string {
  return table(['NAME', 'ROLE', 'CREATED', 'BY'], tokens.map((t) => [t.name, t.role, t.createdAt, t.createdBy]));
}

export function formatUsage(u: TenantUsageBody): string {
  const of = (used: string, limit: string | null) => (limit === null ? `${used} (no limit)` : `${used} of ${limit}`);
  const { limits } = u;
  return keyValues([
    ['tenant', u.tenant],
    ['volumes', of(String(u.volumes), limits.volumes === null ? null : String(limits.volumes))],
    ['total size', of(formatSize(u.bytes), limits.bytes === null ? null : formatSize(limits.bytes))],
    ['largest volume', limits.sizeBytes === null ? 'no limit' : formatSize(limits.sizeBytes)],
    ['snapshots per volume', limits.snapshots === null ? 'no limit' : String(limits.snapshots)],
    ['pools', limits.pools === null ? 'any' : limits.pools.join(', ')],
  ]);
}

/** An operation's state in a word or two: "done", "running 40%", "failed SHRINK_REFUSED". */
function operationState(o: OperationRecord): string {
  if (o.state === 'running') return o.total > 0 && !(o.total <= 1 && o.unit === 'steps') ? `running ${Math.floor((o.done / o.total) * 100)}%` : 'running';
  return o.error ? `${o.state} ${o.error.code}` : o.state;
}

export function formatOperations(ops: OperationRecord[]): string {
  return table(
    ['ID', 'KIND', 'VOLUME', 'STATE', 'BY', 'STARTED', 'MESSAGE'],
    ops.map((o) => [o.id, o.kind, `${o.tenant}/${o.volume}`, operationState(o), o.by, o.startedAt, o.message]),
  );
}

export function formatOperation(o: OperationRecord): string {
  const pairs: Array<[string, string]> = [
    ['operation', `${o.id} (${o.kind})`],
    ['volume', `${o.tenant}/${o.volume}${o.target ? ` -> ${o.target.tenant}/${o.target.volume}` : ''}`],
    ['state', operationState(o)],
    ['progress', `${o.done} of ${o.total} ${o.unit}`],
    ['message', o.message],
    ['by', o.by],
    ['master', o.owner],
    ['started', o.startedAt],
    ['finished', o.finishedAt ?? '-'],
  ];
  if (o.error) pairs.push(['error', `${o.error.code}: ${o.error.message}`]);
  if (o.result) pairs.push(['result', JSON.stringify(o.result)]);
  return keyValues(pairs);
}

/** A request body short enough for a table cell (a resize's size, a token's role); longer ones are in --json. */
function shortBody(body: unknown): string {
  if (body === undefined || body === null) return '';
  const text = JSON.stringify(body);
  return text.length <= 60 && text !== '{}' ? ` ${text}` : '';
}

/** One audit entry per line: when, who, what, how it ended. */
export function formatAudit(entries: AuditEntry[]): string {
  return table(
    ['TIME', 'WHO', 'ROLE', 'REQUEST', 'OUTCOME'],
    entries.map((e) => [
      e.at,
      e.who.name,
      e.who.role,
      `${e.method} ${e.path}${e.query && Object.keys(e.query).length > 0 ? `?${new URLSearchParams(e.query).toString()}` : ''}${shortBody(e.body)}`,
      [e.outcome, e.status === undefined ? '' : String(e.status), e.code ?? '', e.operation ? `operation ${e.operation}` : ''].filter(Boolean).join(' '),
    ]),
  );
}

export function json(value: unknown): string {
  return `${JSON.stringify(value, null, 2)}\n`;
}
