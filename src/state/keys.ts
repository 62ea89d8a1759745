// Every etcd key volplugin uses, under one prefix with a root per kind. Change the layout here
// and nowhere else.

export const DEFAULT_PREFIX = '/volplugin';

export function keys(prefix: string = DEFAULT_PREFIX) {
  const p = prefix.replace(/\/+$/, '');
  return {
    prefix: p,
    tenants: `${p}/tenants/`,
    tenant: (tenant: string) => `${p}/tenants/${tenant}`,
    /** Every uploaded revision, zero-padded so that keys sort by revision. */
    tenantHistory: (tenant: string) => `${p}/tenant-history/${tenant}/`,
    tenantRevision: (tenant: string, revision: number) =>
      `${p}/tenant-history/${tenant}/${String(revision).padStart(10, '0')}`,
    volumes: `${p}/volumes/`,
    tenantVolumes: (tenant: string) => `${p}/volumes/${tenant}/`,
    volume: (tenant: string, volume: string) => `${p}/volumes/${tenant}/${volume}`,
    mounts: `${p}/mounts/`,
    mount: (tenant: string, volume: string) => `${p}/mounts/${tenant}/${volume}`,
    /**
     * One host's mount locks, `<hostId>/<tenant>/<volume>`: written and removed in the transaction
     * that writes or removes the lock, bound to the same lease, so that a host finds its own locks
     * without listing every lock of the cluster (its convergence pass). An index, not a lock: the
     * lock key decides; an entry whose lock is gone (force-removed) lasts only as long as its lease.
     */
    hostMounts: (hostId: string) => `${p}/host-mounts/${hostId}/`,
    hostMount: (hostId: string, tenant: string, volume: string) => `${p}/host-mounts/${hostId}/${tenant}/${volume}`,
    /**
     * The last acquisition of a volume's mount lock (who, under which lease, which generation):
     * persistent, not lease-bound, written in the transaction that takes the lock (see mounts.ts).
     */
    acquired: (tenant: string, volume: string) => `${p}/acquired/${tenant}/${volume}`,
    /**
     * The format marks of a volume (formatStarted, formatted): written only by the host holding its
     * mount lock, in a key of its own so that a host never writes the volume record (volumes.ts).
     */
    format: (tenant: string, volume: string) => `${p}/formats/${tenant}/${volume}`,
    /** A remove or rollback in progress: no mount lock may be taken while it exists (see exclusion.ts). */
    exclusive: (tenant: string, volume: string) => `${p}/exclusive/${tenant}/${volume}`,
    /** A create in progress: written before the image, removed with the record's write (see intents.ts). */
    intents: `${p}/intents/`,
    intent: (tenant: string, volume: string) => `${p}/intents/${tenant}/${volume}`,
    /** Short-lived operation locks (create, remove, snapshot copy) so that two masters never race. */
    operation: (tenant: string, volume: string) => `${p}/operations/${tenant}/${volume}`,
    /** Per tenant: its volumes and their sizes added up, changed in the transaction of every create and delete (usage.ts). */
    usage: `${p}/usage/`,
    tenantUsage: (tenant: string) => `${p}/usage/${tenant}`,
    /** API tokens by the SHA-256 of the token (tokens.ts); the token itself is never stored. */
    tokens: `${p}/tokens/`,
    token: (hash: string) => `${p}/tokens/${hash}`,
    /** Token name -> hash, so that names are unique and a token is revoked by name. */
    tokenNames: `${p}/token-names/`,
    tokenName: (name: string) => `${p}/token-names/${name}`,
    hosts: `${p}/hosts/`,
    host: (hostId: string) => `${p}/hosts/${hostId}`,
    /**
     * Requests to one host (host-requests.ts): `<hostId>/<id>`, bound to the requester's lease, so
     * that a request whose requester died vanishes; the host writes its answer into the same key.
     */
    hostRequests: (hostId: string) => `${p}/host-requests/${hostId}/`,
    hostRequest: (hostId: string, id: string) => `${p}/host-requests/${hostId}/${id}`,
    /** Where a CSI CO has published each volume (ControllerPublishVolume): one host per volume (attachments.ts). */
    attachments: `${p}/attachments/`,
    attachment: (tenant: string, volume: string) => `${p}/attachments/${tenant}/${volume}`,
    /**
     * Request names (a CSI CreateVolume or CreateSnapshot name) by the SHA-256 of the name, and the
     * reverse index by what each made, so that removing the target releases its name (request-names.ts).
     */
    requestName: (kind: 'volume' | 'snapshot', hash: string) => `${p}/request-names/by-name/${kind}/${hash}`,
    requestTarget: (tenant: string, volume: string, snapshot?: string) =>
      `${p}/request-names/by-target/${tenant}/${volume}${snapshot === undefined ? '' : `/@${snapshot}`}`,
    /** The reverse index entries of a volume's snapshots. */
    requestTargetSnapshots: (tenant: string, volume: string) => `${p}/request-names/by-target/${tenant}/${volume}/@`,
    /** The one live volplugin process of a host id, bound to its lease (see hosts.ts). */
    hostAlive: (hostId: string) => `${p}/host-alive/${hostId}`,
    /**
     * Long operations and their progress (progress.ts), by an id that sorts by start time (timeline.ts);
     * `progress-alive/<id>` exists while the master running it lives (bound to its lease).
     */
    progress: `${p}/progress/`,
    progressRecord: (id: string) => `${p}/progress/${id}`,
    progressAlive: (id: string) => `${p}/progress-alive/${id}`,
    /** The audit trail (audit.ts): one entry per change made through the API, by a time-sorted id. */
    audit: `${p}/audit/`,
    auditEntry: (id: string) => `${p}/audit/${id}`,
    /** A resize in progress: written with the record's new size, removed once the image has it (volumes.ts growVolume). */
    resizes: `${p}/resizes/`,
    resize: (tenant: string, volume: string) => `${p}/resizes/${tenant}/${volume}`,
    /** A restore into a volume in progress: written before its scratch image, removed once it is done or undone (src/backups/restore.ts). */
    restores: `${p}/restores/`,
    restore: (tenant: string, volume: string) => `${p}/restores/${tenant}/${volume}`,
    /** volsupervisor's leader election. */
    supervisorElection: `${p}/supervisor/election`,
    /** Per volume: its backups (those kept, with bytes and time), the last scheduled slot and error (src/backups). */
    backups: `${p}/backups/`,
    backup: (tenant: string, volume: string) => `${p}/backups/${tenant}/${volume}`,
    /** Last scheduled snapshot time per volume, so that a new leader neither repeats nor skips one. */
    snapshotSchedule: (tenant: string, volume: string) => `${p}/supervisor/last/${tenant}/${volume}`,
  };
}

export type Keys = ReturnType<typeof keys>;
