import { describe, expect, it } from 'vitest';
import { PolicyError, assertName, imageName, nameProblem, parseImageName, parseVolumeRef } from '../../src/policy/index.js';

describe('tenant and volume names', () => {
  it.each(['tenant1', 'T', 'a-b_c', '0day', 'x'.repeat(64)])('tenant %j is valid', (name) => {
    expect(nameProblem('tenant', name)).toBeNull();
  });

  it.each(['foo', 'foo.bar', 'a.b.c', 'v-1_2', '9'])('volume %j is valid', (name) => {
    expect(nameProblem('volume', name)).toBeNull();
  });

  it.each([
    ['', /empty/],
    ['x'.repeat(65), /65 characters long; the limit is 64/],
    ['a/b', /contains "\/"/],
    ['a..b', /contains "\.\."/],
    ['..', /contains "\.\."/],
    ['a b', /whitespace/],
    ['a\tb', /whitespace/],
    ['tab\n', /whitespace/],
    ['a;b', /contains ";"/],
    ['a$b', /contains "\$"/],
    ['a`b', /contains "`"/],
    ['a|b', /contains "\|"/],
    ['a&b', /contains "&"/],
    ['a>b', /contains ">"/],
    ['a*b', /contains "\*"/],
    ["a'b", /contains "'"/],
    ['a"b', /contains "\\""/],
    ['a\\b', /contains "\\\\"/],
    ['a(b)', /contains "\("/],
    ['café', /non-ASCII/],
    ['日本', /non-ASCII/],
    ['-rf', /must start with a letter or a digit/],
    ['.hidden', /must start with a letter or a digit/],
    ['a\u0000b', /control character/],
  ])('volume %j is rejected', (name, reason) => {
    const err = (() => {
      try {
        assertName('volume', name);
      } catch (e) {
        return e as PolicyError;
      }
      throw new Error('accepted');
    })();
    expect(err).toBeInstanceOf(PolicyError);
    expect(err.code).toBe('INVALID_NAME');
    expect(err.field).toBe('volume');
    expect(err.message).toMatch(reason);
  });

  it('tenant names may not contain a dot', () => {
    expect(nameProblem('tenant', 'a.b')).toMatch(/separates tenant and volume/);
  });
});

describe('TENANT/VOLUME references', () => {
  it('parses and validates both halves', () => {
    expect(parseVolumeRef('tenant1/foo')).toEqual({ tenant: 'tenant1', volume: 'foo' });
    expect(() => parseVolumeRef('tenant1')).toThrow(/not TENANT\/VOLUME/);
    expect(() => parseVolumeRef('/foo')).toThrow(/tenant name is empty/);
    expect(() => parseVolumeRef('tenant1/')).toThrow(/volume name is empty/);
    expect(() => parseVolumeRef('a/b/c')).toThrow(/contains "\/"/);
  });
});

describe('image names', () => {
  it('are tenant.volume and invert', () => {
    expect(imageName('tenant1', 'foo')).toBe('tenant1.foo');
    expect(parseImageName('tenant1.foo.bar')).toEqual({ tenant: 'tenant1', volume: 'foo.bar' });
    expect(parseImageName('nodot')).toBeNull();
    expect(parseImageName('a.b..c')).toBeNull();
  });

  it('are unambiguous for every pair (exhaustive over a small alphabet)', () => {
    const alphabet = ['a', 'b', '.', '-', '_'];
    const words: string[] = [''];
    for (let len = 1; len <= 3; len++) {
      for (const w of words.filter((x) => x.length === len - 1)) for (const c of alphabet) words.push(w + c);
    }
    const tenants = words.filter((w) => nameProblem('tenant', w) === null);
    const volumes = words.filter((w) => nameProblem('volume', w) === null);
    const seen = new Map<string, string>();
    for (const t of tenants) {
      for (const v of volumes) {
        const image = imageName(t, v);
        const pair = `${t}/${v}`;
        expect(seen.get(image), `${pair} collides`).toBeUndefined();
        seen.set(image, pair);
        expect(parseImageName(image)).toEqual({ tenant: t, volume: v });
      }
    }
    expect(seen.size).toBeGreaterThan(100);
  });
});
