// How big a filesystem is by its superblock, read from the first bytes of its device (which
// mapper/fs.ts probeDevice reads anyway): a mount compares it with the device's size to know that a
// resize grew the device while the filesystem was not mounted (mapper/grow.ts grows it).

/** The families of filesystems volplugin grows. */
export type GrowableKind = 'ext' | 'xfs' | 'btrfs';

/** The family of a filesystem type (blkid's or /proc/self/mountinfo's name); null: not one it grows. */
export function growableKind(type: string): GrowableKind | null {
  if (type === 'ext2' || type === 'ext3' || type === 'ext4') return 'ext';
  if (type === 'xfs' || type === 'btrfs') return type;
  return null;
}

/**
 * The size of the filesystem of `type` in bytes, as its superblock says, from the first bytes of
 * its device (`head`: at least the first 128 KiB); null when the type is not one volplugin grows
 * or the superblock does not match. The layouts are the on-disk formats:
 *   ext2/3/4  superblock at 1024, little-endian: s_blocks_count_lo (+4), s_log_block_size (+24),
 *             s_magic 0xEF53 (+56), s_feature_incompat (+96; 0x80 = 64bit), s_blocks_count_hi (+336);
 *   xfs       superblock at 0, big-endian: "XFSB", sb_blocksize (+4), sb_dblocks (+8);
 *   btrfs     superblock at 64 KiB, little-endian: "_BHRfS_M" (+64), total_bytes (+112).
 */
export function filesystemBytes(type: string, head: Buffer): number | null {
  switch (growableKind(type)) {
    case 'ext': {
      const sb = 1024;
      if (head.length < sb + 340 || head.readUInt16LE(sb + 56) !== 0xef53) return null;
      const blockSize = 1024 * 2 ** head.readUInt32LE(sb + 24);
      const is64 = (head.readUInt32LE(sb + 96) & 0x80) !== 0;
      const blocks = head.readUInt32LE(sb + 4) + (is64 ? head.readUInt32LE(sb + 336) * 2 ** 32 : 0);
      return blocks * blockSize;
    }
    case 'xfs': {
      if (head.length < 16 || head.toString('latin1', 0, 4) !== 'XFSB') return null;
      return Number(head.readBigUInt64BE(8)) * head.readUInt32BE(4);
    }
    case 'btrfs': {
      const sb = 64 * 1024;
      if (head.length < sb + 120 || head.toString('latin1', sb + 64, sb + 72) !== '_BHRfS_M') return null;
      return Number(head.readBigUInt64LE(sb + 112));
    }
    default:
      return null;
  }
}
