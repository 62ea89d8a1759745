// Every read and write a chaos run makes through a volume's mountpoint, in a process of its own:
// I/O on a fenced or frozen mount can block in the kernel, and it must block this child (which the
// runner abandons at its deadline), never the runner. Plain JavaScript so that it starts fast.
//
//   node journal-io.mjs write DIR SESSION INTERVAL_MS MAX [any-dir]
//                                        append records to DIR/journal/SESSION.log, fsync each, print
//                                        "ack SEQ" after each fsync; DIR must be a mount point (a
//                                        volume that is not mounted must not be written on the host's
//                                        disk) unless "any-dir" is given (unit tests)
//   node journal-io.mjs read DIR [any-dir]   check every DIR/journal/*.log, print JSON
//   node journal-io.mjs mark FILE TEXT [any-dir]    write FILE (fsync'd) in a mounted directory
//   node journal-io.mjs cat FILE [any-dir]          print FILE of a mounted directory, or "<missing>"
//
// A record is one 128-byte line: "VPJ1 <session> <seq> <payload> <crc32>\n". The payload is
// derived from session and seq, and the CRC covers everything before it, so a record that is torn,
// stale or from another place is told from a good one.

import { createHash } from 'node:crypto';
import { closeSync, fsyncSync, mkdirSync, openSync, readdirSync, readFileSync, statSync, writeSync } from 'node:fs';
import path from 'node:path';
import { setTimeout } from 'node:timers';
import { crc32 } from 'node:zlib';

const RECORD = 128;
const SESSION_WIDTH = 24;

function payload(session, seq) {
  const a = createHash('sha256').update(`${session}:${seq}`).digest('hex');
  const b = createHash('sha256').update(`${seq}:${session}`).digest('hex');
  return (a + b).slice(0, 77);
}

function record(session, seq) {
  const body = `VPJ1 ${session.padEnd(SESSION_WIDTH)} ${String(seq).padStart(10, '0')} ${payload(session, seq)}`;
  const crc = crc32(body).toString(16).padStart(8, '0');
  const line = `${body} ${crc}\n`;
  if (line.length !== RECORD) throw new Error(`record length ${line.length}`);
  return line;
}

/** The seq of a good record of `session`, or null. */
function parse(slot, session) {
  if (slot.length !== RECORD || !slot.endsWith('\n')) return null;
  const body = slot.slice(0, RECORD - 10);
  const crc = slot.slice(RECORD - 9, RECORD - 1);
  if (crc32(body).toString(16).padStart(8, '0') !== crc) return null;
  const seq = Number(body.slice(5 + SESSION_WIDTH + 1, 5 + SESSION_WIDTH + 11));
  if (body.slice(5, 5 + SESSION_WIDTH).trimEnd() !== session || body.slice(5 + SESSION_WIDTH + 12) !== payload(session, seq)) return null;
  return seq;
}

/** Throws unless `dir` is a mount point: a different device than its parent's. */
function assertMounted(dir) {
  if (statSync(dir).dev === statSync(path.dirname(dir)).dev) throw Object.assign(new Error(`${dir} is not a mount point`), { code: 'ENOTMOUNTED' });
}

function write(dir, session, intervalMs, max, anyDir) {
  if (session.length > SESSION_WIDTH) throw new Error(`session name longer than ${SESSION_WIDTH}`);
  if (!anyDir) assertMounted(dir);
  try {
    mkdirSync(path.join(dir, 'journal'));
  } catch (err) {
    if (err.code !== 'EEXIST') throw err;
  }
  const fd = openSync(path.join(dir, 'journal', `${session}.log`), 'a');
  let seq = 0;
  const step = () => {
    if (seq >= max) {
      closeSync(fd);
      return;
    }
    seq++;
    try {
      writeSync(fd, record(session, seq));
      fsyncSync(fd);
    } catch (err) {
      process.stdout.write(`error ${seq} ${err.code ?? ''} ${err.message}\n`);
      process.exit(3);
    }
    process.stdout.write(`ack ${seq}\n`);
    setTimeout(step, intervalMs);
  };
  process.on('SIGTERM', () => process.exit(0));
  step();
}

function read(dir, anyDir) {
  if (!anyDir) assertMounted(dir);
  const out = {};
  let files = [];
  try {
    files = readdirSync(path.join(dir, 'journal')).filter((f) => f.endsWith('.log'));
  } catch (err) {
    if (err.code !== 'ENOENT') throw err;
  }
  for (const file of files) {
    const session = file.slice(0, -4);
    const text = readFileSync(path.join(dir, 'journal', file), 'latin1');
    const seen = new Set();
    let corrupt = 0;
    const slots = Math.floor(text.length / RECORD);
    for (let i = 0; i < slots; i++) {
      const seq = parse(text.slice(i * RECORD, (i + 1) * RECORD), session);
      if (seq === null) corrupt++;
      else seen.add(seq);
    }
    let max = 0;
    for (const seq of seen) max = Math.max(max, seq);
    const missing = [];
    for (let seq = 1; seq <= max && missing.length < 50; seq++) if (!seen.has(seq)) missing.push(seq);
    out[session] = { max, count: seen.size, missing, corrupt, tornBytes: text.length % RECORD };
  }
  process.stdout.write(JSON.stringify(out));
}

function mark(file, text, anyDir) {
  if (!anyDir) assertMounted(path.dirname(file));
  const fd = openSync(file, 'w');
  writeSync(fd, text);
  fsyncSync(fd);
  closeSync(fd);
  const dirFd = openSync(path.dirname(file), 'r');
  fsyncSync(dirFd);
  closeSync(dirFd);
}

function cat(file, anyDir) {
  if (!anyDir) assertMounted(path.dirname(file));
  try {
    process.stdout.write(readFileSync(file, 'utf8'));
  } catch (err) {
    if (err.code !== 'ENOENT') throw err;
    process.stdout.write('<missing>');
  }
}

const [command, ...args] = process.argv.slice(2);
try {
  if (command === 'write') write(args[0], args[1], Number(args[2]), Number(args[3]), args[4] === 'any-dir');
  else if (command === 'read') read(args[0], args[1] === 'any-dir');
  else if (command === 'mark') mark(args[0], args[1], args[2] === 'any-dir');
  else if (command === 'cat') cat(args[0], args[1] === 'any-dir');
  else throw new Error(`unknown command ${command}; see the comment at the top of journal-io.mjs`);
} catch (err) {
  process.stderr.write(`journal-io ${command}: ${err.code ?? ''} ${err.message}\n`);
  process.exit(2);
}
