// The value syntaxes users write in policies and driver options: sizes with units, Go durations and
// Go's ParseBool spellings. Pure functions; each throws a PolicyError naming `field`.

import { PolicyError } from './errors.js';

// ---------------------------------------------------------------------------------------------
// Sizes. Units are binary (1 KB = 1024 bytes, 1 MB = 1024 KB = 1 MiB, ...) because RBD images,
// like disks, are sized in powers of two; the IEC spellings KiB/MiB/GiB/TiB mean the same thing.

const sizeUnits: Record<string, number> = {
  KB: 1024,
  MB: 1024 ** 2,
  GB: 1024 ** 3,
  TB: 1024 ** 4,
  KIB: 1024,
  MIB: 1024 ** 2,
  GIB: 1024 ** 3,
  TIB: 1024 ** 4,
};

export const SIZE_UNITS = ['KB', 'MB', 'GB', 'TB'] as const;

export interface ParseSizeOptions {
  /** The unit of a bare number ("10" -> 10 MB for driver options); absent: a unit is required. */
  defaultUnit?: (typeof SIZE_UNITS)[number];
  /** Name of the field for messages. */
  field: string;
  code?: 'INVALID_POLICY' | 'INVALID_OPTION';
}

/**
 * Parses "10MB", "1.5 GB", "512kb" (units are case-insensitive) to bytes. The result must be a
 * whole number of bytes, at least 1 MB (librbd's smallest useful image) and a safe integer.
 */
export function parseSize(text: string, options: ParseSizeOptions): number {
  const { field, defaultUnit } = options;
  const code = options.code ?? 'INVALID_OPTION';
  const m = /^\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*$/.exec(text);
  if (!m) {
    throw new PolicyError(code, `${field}: ${JSON.stringify(text)} is not a size; write a number and a unit, e.g. "10GB"`, field);
  }
  const [, amount = '', rawUnit = ''] = m;
  let unit = rawUnit.toUpperCase();
  if (unit === '') {
    if (!defaultUnit) {
      throw new PolicyError(code, `${field}: ${JSON.stringify(text)} has no unit; write one of ${SIZE_UNITS.join(', ')}, e.g. "${amount}MB"`, field);
    }
    unit = defaultUnit;
  }
  const multiplier = sizeUnits[unit];
  if (multiplier === undefined) {
    throw new PolicyError(code, `${field}: unknown size unit ${JSON.stringify(rawUnit)}; use one of ${SIZE_UNITS.join(', ')} (binary: 1 MB = 1024 KB)`, field);
  }
  const bytes = Number(amount) * multiplier;
  if (!Number.isInteger(bytes)) {
    throw new PolicyError(code, `${field}: ${JSON.stringify(text)} is not a whole number of bytes`, field);
  }
  if (bytes < 1024 ** 2) {
    throw new PolicyError(code, `${field}: ${JSON.stringify(text)} is too small; a volume needs at least 1MB`, field);
  }
  if (!Number.isSafeInteger(bytes)) {
    throw new PolicyError(code, `${field}: ${JSON.stringify(text)} is too large`, field);
  }
  return bytes;
}

/** The shortest exact spelling of a byte count: 10485760 -> "10MB", 1536 MiB -> "1536MB". */
export function formatSize(bytes: number): string {
  for (const unit of ['TB', 'GB', 'MB', 'KB'] as const) {
    const m = sizeUnits[unit]!;
    if (bytes >= m && bytes % m === 0) return `${bytes / m}${unit}`;
  }
  return `${bytes}B`;
}

// ---------------------------------------------------------------------------------------------
// Go durations (time.ParseDuration): a sequence of decimal numbers, each with a unit, e.g. "300ms",
// "1.5h", "2h45m"; units ns, us (µs, μs), ms, s, m, h; an optional sign; "0" alone is zero.

const durationUnitsMs: Record<string, number> = {
  ns: 1e-6,
  us: 1e-3,
  'µs': 1e-3,
  'μs': 1e-3,
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
};

/** Parses a Go duration to milliseconds (may be fractional below 1 ms). Returns null for garbage. */
export function parseGoDuration(text: string): number | null {
  let s = text;
  let sign = 1;
  if (s.startsWith('-') || s.startsWith('+')) {
    if (s[0] === '-') sign = -1;
    s = s.slice(1);
  }
  if (s === '0') return 0;
  if (s === '') return null;
  let total = 0;
  const part = /^(\d*)(?:\.(\d*))?(ns|us|µs|μs|ms|s|m|h)/;
  while (s.length > 0) {
    const m = part.exec(s);
    if (!m) return null;
    const [whole, int = '', frac] = m;
    if (int === '' && (frac === undefined || frac === '')) return null; // ".s" or "s"
    const value = Number(`${int || '0'}.${frac ?? '0'}`);
    total += value * durationUnitsMs[m[3]!]!;
    s = s.slice(whole.length);
  }
  if (!Number.isFinite(total)) return null;
  return sign * total;
}

export interface ParseDurationOptions {
  field: string;
  code?: 'INVALID_POLICY' | 'INVALID_OPTION';
  /** Smallest accepted value in ms (volsupervisor's clock ticks in seconds: default 1000). */
  minMs?: number;
}

/** Parses a Go duration that must be at least `minMs` (default 1 s). */
export function parseFrequency(text: string, options: ParseDurationOptions): number {
  const { field } = options;
  const code = options.code ?? 'INVALID_OPTION';
  const minMs = options.minMs ?? 1000;
  const ms = parseGoDuration(text.trim());
  if (ms === null) {
    throw new PolicyError(code, `${field}: ${JSON.stringify(text)} is not a duration; write it as Go does, e.g. "30m", "1h30m", "90s"`, field);
  }
  if (ms < minMs) {
    throw new PolicyError(code, `${field}: ${JSON.stringify(text)} is too short; the smallest frequency is ${formatDuration(minMs)}`, field);
  }
  return ms;
}

/** Milliseconds as a Go duration string ("1h30m0s" style is Go's; we write the shorter "1h30m"). */
export function formatDuration(ms: number): string {
  if (ms === 0) return '0s';
  let rest = Math.abs(ms);
  let out = ms < 0 ? '-' : '';
  for (const [unit, size] of [['h', 3_600_000], ['m', 60_000], ['s', 1000]] as const) {
    if (rest >= size) {
      const whole = Math.floor(rest / size);
      out += `${whole}${unit}`;
      rest -= whole * size;
    }
  }
  if (rest > 0) out += `${rest}ms`;
  return out;
}

// ---------------------------------------------------------------------------------------------
// Go's strconv.ParseBool spellings, exactly.

const trueWords = new Set(['1', 't', 'T', 'TRUE', 'true', 'True']);
const falseWords = new Set(['0', 'f', 'F', 'FALSE', 'false', 'False']);

/** Returns the boolean, or null when `text` is not one of Go's ParseBool spellings. */
export function parseGoBool(text: string): boolean | null {
  if (trueWords.has(text)) return true;
  if (falseWords.has(text)) return false;
  return null;
}

export function parseBoolOption(text: string, field: string): boolean {
  const b = parseGoBool(text);
  if (b === null) {
    throw new PolicyError('INVALID_OPTION', `${field}: ${JSON.stringify(text)} is not a boolean; use true or false (also 1, 0, t, f, TRUE, FALSE, True, False)`, field);
  }
  return b;
}

/** A non-negative (or, with `min: 1`, positive) decimal integer written as text. */
export function parseIntegerOption(text: string, field: string, min = 0): number {
  if (!/^\s*\d+\s*$/.test(text) || !Number.isSafeInteger(Number(text))) {
    const sign = /^\s*-/.test(text) ? ' (negative numbers are not allowed)' : '';
    throw new PolicyError('INVALID_OPTION', `${field}: ${JSON.stringify(text)} is not a whole number${sign}; write e.g. ${min === 0 ? '0 or 1000' : '10'}`, field);
  }
  const n = Number(text);
  if (n < min) throw new PolicyError('INVALID_OPTION', `${field}: must be at least ${min}, got ${n}`, field);
  return n;
}
