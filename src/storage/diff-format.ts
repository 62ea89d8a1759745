// The `rbd export-diff` stream format (v1) in TypeScript: what the CLI backend checks a file with
// before `rbd import-diff` sees it (rbd itself would apply a corrupt file half-way), and what the
// memory twin writes and reads. The rules and their messages are the addon's (native/diff_stream.cc):
// a banner "rbd diff v1\n"; then records, each a tag byte: 'f'/'t' (from/to snapshot: u32 length +
// name), 's' (u64 image size), 'w' (u64 offset, u64 length, data), 'z' (u64 offset, u64 length),
// 'e' (the end). Metadata first, a size before any data, every extent within the size, nothing
// after 'e'. Integers are little-endian. A failure is an RbdError EBADMSG, op rbd_diff_v1, whose
// detail says what was wrong, at which byte, and in which file.

import { open, type FileHandle } from 'node:fs/promises';
import { constants } from 'node:os';
import { getSystemErrorMap } from 'node:util';
import { RbdError } from './errors.js';
import type { DiffSummary } from './types.js';

export const DIFF_FORMAT_OP = 'rbd_diff_v1';
const BANNER = 'rbd diff v1\n';
const BANNER_V2 = 'rbd diff v2\n';
const MAX_NAME = 4096;
const MAX_IMAGE_SIZE = 2 ** 56;

export type DiffRecord = { kind: 'w'; offset: number; data: Buffer } | { kind: 'z'; offset: number; length: number };

export interface DiffStreamSpec {
  from: string | null;
  to: string | null;
  size: number;
  records: readonly DiffRecord[];
}

function le32(v: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(v);
  return b;
}

function le64(v: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(BigInt(v));
  return b;
}

/** The bytes of a stream (the memory twin's exports; small images only). */
export function encodeDiff(spec: DiffStreamSpec): Buffer {
  const parts: Buffer[] = [Buffer.from(BANNER)];
  const name = (tag: string, value: string) => parts.push(Buffer.from(tag), le32(Buffer.byteLength(value)), Buffer.from(value));
  if (spec.from !== null) name('f', spec.from);
  if (spec.to !== null) name('t', spec.to);
  parts.push(Buffer.from('s'), le64(spec.size));
  for (const r of spec.records) {
    if (r.kind === 'w') parts.push(Buffer.from('w'), le64(r.offset), le64(r.data.length), r.data);
    else parts.push(Buffer.from('z'), le64(r.offset), le64(r.length));
  }
  parts.push(Buffer.from('e'));
  return Buffer.concat(parts);
}

/** Where a stream is read from: a buffer, or a file read piece by piece. */
interface Source {
  /** `n` bytes, or fewer at the end of the stream. */
  read(n: number): Promise<Buffer>;
  /** Skips `n` bytes; false when the stream ends first. */
  skip(n: number): Promise<boolean>;
  /** Bytes read or skipped so far. */
  readonly position: number;
  /** Bytes left after the position. */
  remaining(): Promise<number>;
}

class BadStream extends Error {
  constructor(
    readonly why: string,
    readonly errno = -constants.errno.EBADMSG,
  ) {
    super(why);
  }
}

function tagName(tag: number): string {
  return tag >= 0x20 && tag < 0x7f ? `'${String.fromCharCode(tag)}'` : `0x${tag}`;
}

const at = (position: number) => ` at byte ${position}`;

async function exact(src: Source, n: number, what: string): Promise<Buffer> {
  const start = src.position;
  const buf = await src.read(n);
  if (buf.length < n) {
    throw new BadStream(`truncated diff stream: ${what}${at(start)} needs ${n} bytes, the stream ends after ${buf.length}`);
  }
  return buf;
}

/**
 * Reads and checks a whole stream; `onRecord` sees every 'w' and 'z' record (the data of 'w' only
 * when `withData`, else it is skipped). Throws BadStream.
 */
async function parse(src: Source, withData: boolean, onRecord?: (record: DiffRecord) => void): Promise<DiffSummary> {
  const banner = await src.read(BANNER.length);
  if (banner.length < BANNER.length) throw new BadStream('not an rbd diff stream: shorter than its banner');
  if (banner.toString('latin1') === BANNER_V2) {
    throw new BadStream('an `rbd diff v2` stream (from `rbd export --export-format 2`): only v1 (`rbd export-diff`) is supported', -constants.errno.EPROTONOSUPPORT);
  }
  if (banner.toString('latin1') !== BANNER) throw new BadStream('not an rbd diff stream: the banner is not "rbd diff v1\\n"');
  const summary: DiffSummary = { fromSnapshot: null, toSnapshot: null, size: 0, streamBytes: 0, dataBytes: 0, zeroBytes: 0, writeRecords: 0, zeroRecords: 0 };
  let sawSize = false;
  let sawData = false;
  for (;;) {
    const start = src.position;
    const tag = (await exact(src, 1, 'a record tag (the stream has no end record)'))[0]!;
    switch (String.fromCharCode(tag)) {
      case 'f':
      case 't': {
        const isFrom = tag === 0x66;
        if (sawData) throw new BadStream(`${tagName(tag)} record after data records${at(start)}`);
        if ((isFrom ? summary.fromSnapshot : summary.toSnapshot) !== null) throw new BadStream(`second ${tagName(tag)} record${at(start)}`);
        const n = (await exact(src, 4, "a snapshot name's length")).readUInt32LE(0);
        if (n === 0 || n > MAX_NAME) throw new BadStream(`snapshot name of ${n} bytes in the ${tagName(tag)} record${at(start)}`);
        const name = await exact(src, n, 'a snapshot name');
        if (name.includes(0)) throw new BadStream(`snapshot name with a NUL byte${at(start)}`);
        if (isFrom) summary.fromSnapshot = name.toString('utf8');
        else summary.toSnapshot = name.toString('utf8');
        break;
      }
      case 's': {
        if (sawData) throw new BadStream(`size record after data records${at(start)}`);
        if (sawSize) throw new BadStream(`second size record${at(start)}`);
        const size = Number((await exact(src, 8, 'the image size')).readBigUInt64LE(0));
        if (size > MAX_IMAGE_SIZE) throw new BadStream(`image size of ${size} bytes${at(start)}`);
        sawSize = true;
        summary.size = size;
        break;
      }
      case 'w':
      case 'z': {
        if (!sawSize) throw new BadStream(`data record before the size record${at(start)}`);
        const extent = await exact(src, 16, 'an extent');
        const offset = Number(extent.readBigUInt64LE(0));
        const length = Number(extent.readBigUInt64LE(8));
        if (offset > summary.size || length > summary.size - offset) {
          throw new BadStream(`${tagName(tag)} record for ${length} bytes at offset ${offset} beyond the image size ${summary.size}${at(start)}`);
        }
        sawData = true;
        if (tag === 0x77) {
          summary.writeRecords++;
          summary.dataBytes += length;
          const what = "the data of a 'w' record";
          if (withData) onRecord?.({ kind: 'w', offset, data: await exact(src, length, what) });
          else {
            const from = src.position;
            if (!(await src.skip(length))) {
              throw new BadStream(`truncated diff stream: ${what}${at(from)} needs ${length} bytes, the stream ends after ${src.position - from}`);
            }
          }
        } else {
          summary.zeroRecords++;
          summary.zeroBytes += length;
          onRecord?.({ kind: 'z', offset, length });
        }
        break;
      }
      case 'e': {
        summary.streamBytes = src.position;
        const left = await src.remaining();
        if (left > 0) throw new BadStream(`${left} bytes after the end record${at(src.position)}`);
        return summary;
      }
      default:
        throw new BadStream(`unknown record tag ${tagName(tag)}${at(start)}`);
    }
  }
}

function bufferSource(buf: Buffer): Source {
  let position = 0;
  return {
    get position() {
      return position;
    },
    read: async (n) => {
      const out = buf.subarray(position, Math.min(buf.length, position + n));
      position += out.length;
      return out;
    },
    skip: async (n) => {
      const ok = buf.length - position >= n;
      position = Math.min(buf.length, position + n);
      return ok;
    },
    remaining: async () => buf.length - position,
  };
}

/** Reads the file in pieces: a 1 TiB stream is checked without holding its data. */
function fileSource(handle: FileHandle, size: number): Source {
  let position = 0;
  return {
    get position() {
      return position;
    },
    read: async (n) => {
      const want = Math.max(0, Math.min(n, size - position));
      const buf = Buffer.alloc(want);
      let got = 0;
      while (got < want) {
        const { bytesRead } = await handle.read(buf, got, want - got, position + got);
        if (bytesRead === 0) break;
        got += bytesRead;
      }
      position += got;
      return buf.subarray(0, got);
    },
    skip: async (n) => {
      const ok = size - position >= n;
      position = Math.min(size, position + n);
      return ok;
    },
    remaining: async () => size - position,
  };
}

function formatError(err: unknown, where: string): unknown {
  if (err instanceof BadStream) return new RbdError({ errno: err.errno, op: DIFF_FORMAT_OP, detail: `${err.why} (${where})` });
  return err;
}

/** Opens `file` for reading, failing as the addon does (op "open", the errno of open(2)). */
async function openStream(file: string): Promise<{ handle: FileHandle; size: number }> {
  let handle: FileHandle;
  try {
    handle = await open(file, 'r');
  } catch (err) {
    const errno = (err as NodeJS.ErrnoException).errno ?? -constants.errno.EIO;
    throw new RbdError({ errno, op: 'open', detail: `${getSystemErrorMap().get(-Math.abs(errno))?.[1] ?? 'error'}: ${file}` });
  }
  return { handle, size: (await handle.stat()).size };
}

/** Checks a whole stream in a file (reading only its records, skipping data): its summary, or the RbdError of its first problem. */
export async function inspectDiffFile(file: string): Promise<DiffSummary> {
  const { handle, size } = await openStream(file);
  try {
    return await parse(fileSource(handle, size), false);
  } catch (err) {
    throw formatError(err, file);
  } finally {
    await handle.close();
  }
}

/** Checks a whole stream held in memory and returns its summary and records (data included). */
export async function decodeDiff(buf: Buffer, where: string): Promise<{ summary: DiffSummary; records: DiffRecord[] }> {
  const records: DiffRecord[] = [];
  try {
    const summary = await parse(bufferSource(buf), true, (r) => records.push(r));
    return { summary, records };
  } catch (err) {
    throw formatError(err, where);
  }
}

/** The summary of a stream's bytes (what the memory twin's export reports). */
export async function summarize(buf: Buffer): Promise<DiffSummary> {
  return (await decodeDiff(buf, 'a stream just written')).summary;
}

/** Reads a whole stream file into memory and decodes it (the memory twin: small images only). */
export async function readDiffFile(file: string): Promise<{ summary: DiffSummary; records: DiffRecord[] }> {
  const { handle } = await openStream(file);
  try {
    return await decodeDiff(await handle.readFile(), file);
  } finally {
    await handle.close();
  }
}
