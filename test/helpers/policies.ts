// The tenant policy the issues and the seed documents show, as users already write it.
export const issuePolicy = {
  'default-options': {
    pool: 'rbd',
    size: '10MB',
    snapshots: true,
    snapshot: { frequency: '30m', keep: 20 },
    filesystem: 'btrfs',
    ephemeral: false,
    'rate-limit': { 'write-iops': 1000, 'read-iops': 1000, 'write-bps': 100000000, 'read-bps': 100000000 },
  },
  filesystems: { btrfs: 'mkfs.btrfs %', ext4: 'mkfs.ext4 -m0 %' },
};
