import { describe, expect, it } from 'vitest';
import { PolicyError, findJsonError, lineColumn, parseJson } from '../../src/policy/index.js';

function jsonError(text: string): PolicyError {
  try {
    parseJson(text, 'the policy');
  } catch (err) {
    expect(err).toBeInstanceOf(PolicyError);
    expect((err as PolicyError).code).toBe('INVALID_JSON');
    return err as PolicyError;
  }
  throw new Error('expected INVALID_JSON');
}

describe('JSON with line and column', () => {
  it('parses valid JSON, also with a byte order mark', () => {
    expect(parseJson('{"a": [1, 2.5e3, true, null, "x\\u00e9"]}')).toEqual({ a: [1, 2500, true, null, 'xé'] });
    expect(parseJson('\ufeff{"a":1}')).toEqual({ a: 1 });
  });

  it('computes 1-based lines and columns', () => {
    expect(lineColumn('ab\ncd', 0)).toEqual({ line: 1, column: 1 });
    expect(lineColumn('ab\ncd', 4)).toEqual({ line: 2, column: 2 });
  });

  it.each([
    ['{\n  "pool": "rbd",\n}', 3, 1, /trailing comma/],
    ['{\n  "a": 1\n  "b": 2\n}', 3, 3, /expected ',' or '}'/],
    ['{"a": tru}', 1, 10, /unexpected '}' in 'true'/],
    ["{'a': 1}", 1, 2, /double quotes/],
    ['{"a": 1', 1, 8, /end of input/],
    ['{"a": "x', 1, 9, /unterminated string/],
    ['{"a": 1}}', 1, 9, /after the end/],
    ['[1, 2,]', 1, 7, /trailing comma/],
    ['{"a": 01}', 1, 8, /expected ',' or '}'/],
    ['{"a": "\\q"}', 1, 8, /bad escape/],
    ['{\n\n   x', 3, 4, /property name/],
  ])('%j -> line %i, column %i', (text, line, column, reason) => {
    const err = jsonError(text);
    expect(err.message).toContain(`at line ${line}, column ${column}`);
    expect(err.message).toMatch(reason);
    expect(err.message).toContain('the policy');
  });

  it('says when the input is empty', () => {
    expect(jsonError('  \n').message).toMatch(/empty/);
  });

  it('agrees with JSON.parse on what is valid', () => {
    for (const text of ['{}', '[]', '"s"', '0', '-0.5', '1E+2', ' {"a":{"b":[[]]}} ', 'true', 'null']) {
      expect(findJsonError(text)).toBeNull();
      expect(() => JSON.parse(text)).not.toThrow();
    }
    for (const text of ['', '+1', '.5', '1.', 'NaN', '{a:1}', '[1 2]', '"\t"', 'nul']) {
      expect(findJsonError(text)).not.toBeNull();
      expect(() => JSON.parse(text)).toThrow();
    }
  });
});
