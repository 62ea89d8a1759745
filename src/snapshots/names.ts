// Snapshot names: who made the snapshot and when, in a form that sorts by time.
//
//   vs-20261122T123000Z        taken by volsupervisor for the schedule slot that began at that time
//   manual-20261122T123000Z    taken on demand (volcli volume snapshot take / POST .../snapshots)
//   manual-20261122T123000Z-2  a second on-demand snapshot within the same second
//
// Times are UTC with one-second resolution. A supervisor name is derived from the schedule slot, not
// from the clock at the moment of the call, so two supervisors (or a new leader retrying the slot an
// old one took just before it died) compute the same name and Ceph refuses the second one (EEXIST):
// that is what makes scheduled snapshots idempotent. Any other name (e.g. taken with the rbd CLI)
// has origin "other": volplugin lists it but never prunes it.

export type SnapshotOrigin = 'supervisor' | 'manual' | 'other';

export const SUPERVISOR_PREFIX = 'vs-';
export const MANUAL_PREFIX = 'manual-';

const nameRe = /^(vs|manual)-(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z(?:-([1-9]\d{0,5}))?$/;

export interface ParsedSnapshotName {
  origin: Exclude<SnapshotOrigin, 'other'>;
  /** The time in the name (whole seconds, UTC). */
  time: Date;
  /** 1 for the first snapshot of its second, 2.. for later ones (only on-demand snapshots have them). */
  seq: number;
}

function compactTime(at: Date | number): string {
  const date = typeof at === 'number' ? new Date(at) : at;
  if (Number.isNaN(date.getTime())) throw new RangeError(`invalid snapshot time: ${String(at)}`);
  // 2026-11-22T12:30:00.000Z -> 20261122T123000Z
  return date.toISOString().replace(/\.\d{3}Z$/, 'Z').replace(/[-:]/g, '');
}

/** The name of a supervisor snapshot for the slot that starts at `slot` (ms since the epoch). */
export function supervisorSnapshotName(slot: Date | number): string {
  return `${SUPERVISOR_PREFIX}${compactTime(slot)}`;
}

/** The name of an on-demand snapshot taken at `at`; `seq` > 1 for a later one within the same second. */
export function manualSnapshotName(at: Date | number, seq = 1): string {
  if (!Number.isInteger(seq) || seq < 1) throw new RangeError(`snapshot sequence must be a whole number >= 1, got ${seq}`);
  return `${MANUAL_PREFIX}${compactTime(at)}${seq > 1 ? `-${seq}` : ''}`;
}

/** Parses a name volplugin made; null for any other name. */
export function parseSnapshotName(name: string): ParsedSnapshotName | null {
  const m = nameRe.exec(name);
  if (!m) return null;
  const [, prefix, y, mo, d, h, mi, s, seq] = m;
  const ms = Date.UTC(Number(y), Number(mo) - 1, Number(d), Number(h), Number(mi), Number(s));
  const time = new Date(ms);
  // Reject impossible dates (20261332T...) rather than letting Date.UTC roll them over.
  if (compactTime(time) !== `${y}${mo}${d}T${h}${mi}${s}Z`) return null;
  return { origin: prefix === 'vs' ? 'supervisor' : 'manual', time, seq: seq === undefined ? 1 : Number(seq) };
}

export function snapshotOrigin(name: string): SnapshotOrigin {
  return parseSnapshotName(name)?.origin ?? 'other';
}

/**
 * Orders snapshot names oldest first: names volplugin made by their time (then sequence), others
 * after them by name. Plain string order agrees except for sequence numbers of 10 and more.
 */
export function compareSnapshotNames(a: string, b: string): number {
  const pa = parseSnapshotName(a);
  const pb = parseSnapshotName(b);
  if (pa && pb) {
    const dt = pa.time.getTime() - pb.time.getTime();
    if (dt !== 0) return dt;
    if (pa.origin !== pb.origin) return pa.origin < pb.origin ? -1 : 1;
    if (pa.seq !== pb.seq) return pa.seq - pb.seq;
    return 0;
  }
  if (pa) return -1;
  if (pb) return 1;
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * Whether `name` is acceptable as a snapshot name in a request (remove, copy, rollback): what RBD
 * allows minus what would be unsafe in URLs and shell commands. Returns the problem or null.
 */
export function snapshotNameProblem(name: string): string | null {
  if (name.length === 0) return 'snapshot name is empty';
  if (name.length > 128) return `snapshot name is ${name.length} characters long; the limit is 128`;
  if (!/^[A-Za-z0-9][A-Za-z0-9_.:+-]*$/.test(name)) {
    return `snapshot name ${JSON.stringify(name)} may contain only letters, digits, "_", ".", ":", "+" and "-" and must start with a letter or a digit`;
  }
  return null;
}
