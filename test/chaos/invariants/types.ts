// What an invariant checker returns: nothing when the invariant holds, else violations that carry
// their evidence (which host had which mount, the records a reader missed, the orphan found). The
// runner adds the seed, the scenario and the round.

export const INVARIANTS = {
  'single-writer': 'never two writable mounts of one volume (every host\'s mounts, and whether a write succeeds)',
  durability: 'every record fsync\'d before a fault is read back by the next holder',
  'not-stuck': 'another host mounts a volume within the lease TTL plus fencing time after its holder is gone',
  'no-orphans': 'no orphan image, record, lock, intent, mapping, loop device, mount or rbd-fuse process at the end',
  'acked-creates': 'every acknowledged create exists (record and image)',
  'clean-failure': 'a refused or failed operation changes nothing and says why (and refusals that must happen do)',
  bounded: 'every call answers within its deadline; no daemon hangs',
  'no-stray-fence': 'a mount fences only a holder that did not let go of that very volume (never the holder of its source)',
  'good-backups': 'every backup a manifest counts verifies, and its chain read back with the real rbd import-diff gives the source snapshot\'s bytes',
  'backups-resume': 'after a killed backup the next one succeeds, continues the chain or starts a new one, and removes what the killed one left',
} as const;

export type InvariantName = keyof typeof INVARIANTS;

export interface Violation {
  invariant: InvariantName;
  message: string;
  evidence: Record<string, unknown>;
}

export function violation(invariant: InvariantName, message: string, evidence: Record<string, unknown> = {}): Violation {
  return { invariant, message, evidence };
}
