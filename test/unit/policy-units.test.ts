import { describe, expect, it } from 'vitest';
import {
  PolicyError,
  formatDuration,
  formatSize,
  parseBoolOption,
  parseFrequency,
  parseGoBool,
  parseGoDuration,
  parseIntegerOption,
  parseSize,
} from '../../src/policy/index.js';

const MiB = 1024 ** 2;

function policyError(fn: () => unknown): PolicyError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(PolicyError);
    return err as PolicyError;
  }
  throw new Error('expected a PolicyError');
}

describe('sizes (binary units)', () => {
  it.each([
    ['10MB', 10 * MiB],
    ['10 MB', 10 * MiB],
    ['10mb', 10 * MiB],
    ['1024KB', MiB],
    ['1GB', 1024 * MiB],
    ['1.5GB', 1536 * MiB],
    ['2TB', 2 * 1024 ** 4],
    ['3MiB', 3 * MiB],
    ['1GiB', 1024 * MiB],
  ])('parses %s', (text, bytes) => {
    expect(parseSize(text, { field: 'size' })).toBe(bytes);
  });

  it('needs a unit unless a default unit is given', () => {
    const err = policyError(() => parseSize('10', { field: 'default-options.size', code: 'INVALID_POLICY' }));
    expect(err.code).toBe('INVALID_POLICY');
    expect(err.field).toBe('default-options.size');
    expect(err.message).toMatch(/no unit/);
    expect(parseSize('10', { field: 'size', defaultUnit: 'MB' })).toBe(10 * MiB);
  });

  it.each(['10XB', '10 bytes', '10B', '10PB'])('rejects the unknown unit in %s', (text) => {
    expect(policyError(() => parseSize(text, { field: 'size' })).message).toMatch(/unknown size unit/);
  });

  it.each(['', 'MB', '-10MB', 'ten MB', '1e3MB', '0x10MB'])('rejects %j as not a size', (text) => {
    expect(policyError(() => parseSize(text, { field: 'size' })).message).toMatch(/not a size/);
  });

  it('rejects fractions of a byte, sizes under 1 MB and unsafe sizes', () => {
    expect(policyError(() => parseSize('0.1KB', { field: 'size' })).message).toMatch(/whole number of bytes/);
    expect(policyError(() => parseSize('512KB', { field: 'size' })).message).toMatch(/too small/);
    expect(policyError(() => parseSize('0MB', { field: 'size' })).message).toMatch(/too small/);
    expect(policyError(() => parseSize('99999999TB', { field: 'size' })).message).toMatch(/too large/);
  });

  it('formats sizes in the largest exact unit', () => {
    expect(formatSize(10 * MiB)).toBe('10MB');
    expect(formatSize(1536 * MiB)).toBe('1536MB');
    expect(formatSize(2 * 1024 ** 4)).toBe('2TB');
    expect(formatSize(1000)).toBe('1000B');
  });
});

describe('Go durations', () => {
  it.each([
    ['30m', 30 * 60_000],
    ['1h30m', 90 * 60_000],
    ['1.5h', 90 * 60_000],
    ['90s', 90_000],
    ['300ms', 300],
    ['1m30s', 90_000],
    ['2h45m10s', (2 * 3600 + 45 * 60 + 10) * 1000],
    ['.5s', 500],
    ['5.s', 5000],
    ['1000us', 1],
    ['1000µs', 1],
    ['1000000ns', 1],
    ['0', 0],
    ['+5s', 5000],
    ['-5s', -5000],
  ])('parses %s', (text, ms) => {
    expect(parseGoDuration(text)).toBeCloseTo(ms, 9);
  });

  it.each(['', '30', 'm', '1d', '1 h', 'h1', '1mh', '.s', '1.2.3s', 'soon', '1hour', '-', '30m ', ' 30m'])('rejects %j', (text) => {
    expect(parseGoDuration(text)).toBeNull();
  });

  it('frequencies must parse and be at least one second', () => {
    expect(parseFrequency('30m', { field: 'f' })).toBe(1_800_000);
    expect(parseFrequency(' 30m ', { field: 'f' })).toBe(1_800_000);
    const garbage = policyError(() => parseFrequency('every day', { field: 'snapshots.frequency' }));
    expect(garbage.code).toBe('INVALID_OPTION');
    expect(garbage.field).toBe('snapshots.frequency');
    expect(garbage.message).toMatch(/not a duration/);
    expect(policyError(() => parseFrequency('500ms', { field: 'f' })).message).toMatch(/too short.*1s/);
    expect(policyError(() => parseFrequency('-1h', { field: 'f' })).message).toMatch(/too short/);
    expect(policyError(() => parseFrequency('0', { field: 'f' })).message).toMatch(/too short/);
  });

  it('formats durations', () => {
    expect(formatDuration(90 * 60_000)).toBe('1h30m');
    expect(formatDuration(1000)).toBe('1s');
    expect(formatDuration(1500)).toBe('1s500ms');
    expect(formatDuration(0)).toBe('0s');
  });
});

describe('Go ParseBool spellings', () => {
  it.each(['1', 't', 'T', 'TRUE', 'true', 'True'])('%s is true', (text) => expect(parseGoBool(text)).toBe(true));
  it.each(['0', 'f', 'F', 'FALSE', 'false', 'False'])('%s is false', (text) => expect(parseGoBool(text)).toBe(false));
  it.each(['yes', 'no', 'tRUE', 'on', '', ' true', '2'])('%j is neither', (text) => {
    expect(parseGoBool(text)).toBeNull();
    const err = policyError(() => parseBoolOption(text, 'snapshots'));
    expect(err.field).toBe('snapshots');
    expect(err.message).toMatch(/not a boolean/);
  });
});

describe('integer options', () => {
  it('accepts whole numbers and rejects the rest', () => {
    expect(parseIntegerOption('1000', 'rate-limit.write.iops')).toBe(1000);
    expect(parseIntegerOption('0', 'rate-limit.write.iops')).toBe(0);
    expect(policyError(() => parseIntegerOption('-1', 'snapshots.keep', 1)).message).toMatch(/negative/);
    expect(policyError(() => parseIntegerOption('0', 'snapshots.keep', 1)).message).toMatch(/at least 1/);
    expect(policyError(() => parseIntegerOption('1.5', 'x')).message).toMatch(/not a whole number/);
    expect(policyError(() => parseIntegerOption('lots', 'x')).message).toMatch(/not a whole number/);
    expect(policyError(() => parseIntegerOption('99999999999999999999', 'x')).message).toMatch(/not a whole number/);
  });
});
