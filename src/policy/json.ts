// JSON.parse with errors a person can act on: "line 3, column 14: ..." instead of V8's message,
// which names a byte position at best and sometimes no position at all. On failure a small scanner
// walks the text to find where and why it stops being JSON (RFC 8259).

import { PolicyError } from './errors.js';

/** 1-based line and column of a character offset in `text`. */
export function lineColumn(text: string, offset: number): { line: number; column: number } {
  let line = 1;
  let lineStart = 0;
  const end = Math.min(Math.max(offset, 0), text.length);
  for (let i = 0; i < end; i++) {
    if (text.charCodeAt(i) === 10) {
      line++;
      lineStart = i + 1;
    }
  }
  return { line, column: end - lineStart + 1 };
}

class ScanError {
  constructor(
    readonly offset: number,
    readonly reason: string,
  ) {}
}

/** Finds the first syntax error in `text`, or null when it is valid JSON. */
export function findJsonError(text: string): { offset: number; reason: string } | null {
  let i = 0;
  const n = text.length;
  const show = (at: number) =>
    at >= n ? 'end of input' : `'${text[at] === '\n' ? '\\n' : text[at] === '\t' ? '\\t' : text[at]}'`;
  const fail = (reason: string, at = i): never => {
    throw new ScanError(at, reason);
  };
  const ws = () => {
    while (i < n && (text[i] === ' ' || text[i] === '\t' || text[i] === '\n' || text[i] === '\r')) i++;
  };
  const literal = (word: string) => {
    for (let k = 0; k < word.length; k++) {
      if (text[i + k] !== word[k]) fail(`unexpected ${show(i + k)} in '${word}'`, i + k);
    }
    i += word.length;
  };
  const string = () => {
    i++; // opening quote
    for (;;) {
      if (i >= n) fail('unterminated string (missing closing ")');
      const c = text.charCodeAt(i);
      if (c === 0x22) {
        i++;
        return;
      }
      if (c < 0x20) fail('control character in string (escape it, e.g. \\n)');
      if (c === 0x5c) {
        const e = text[i + 1];
        if (e === 'u') {
          if (!/^[0-9a-fA-F]{4}$/.test(text.slice(i + 2, i + 6))) fail('bad \\u escape: needs 4 hex digits');
          i += 6;
        } else if (e !== undefined && '"\\/bfnrt'.includes(e)) {
          i += 2;
        } else {
          fail(`bad escape '\\${e ?? ''}' in string`);
        }
        continue;
      }
      i++;
    }
  };
  const number = () => {
    const m = /^-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?/.exec(text.slice(i));
    if (!m || m[0] === '-' || m[0] === '') fail(`unexpected ${show(i)}: not a number`);
    i += m![0].length;
  };
  const value = (depth: number): void => {
    if (depth > 512) fail('nested too deeply');
    ws();
    const c = text[i];
    if (c === '{') {
      i++;
      ws();
      if (text[i] === '}') {
        i++;
        return;
      }
      for (;;) {
        ws();
        if (text[i] !== '"') {
          fail(text[i] === '}' ? "trailing comma before '}'" : `expected a property name in double quotes, got ${show(i)}`);
        }
        string();
        ws();
        if (text[i] !== ':') fail(`expected ':' after the property name, got ${show(i)}`);
        i++;
        value(depth + 1);
        ws();
        if (text[i] === ',') {
          i++;
          continue;
        }
        if (text[i] === '}') {
          i++;
          return;
        }
        fail(`expected ',' or '}' after a property value, got ${show(i)}`);
      }
    }
    if (c === '[') {
      i++;
      ws();
      if (text[i] === ']') {
        i++;
        return;
      }
      for (;;) {
        ws();
        if (text[i] === ']') fail("trailing comma before ']'");
        value(depth + 1);
        ws();
        if (text[i] === ',') {
          i++;
          continue;
        }
        if (text[i] === ']') {
          i++;
          return;
        }
        fail(`expected ',' or ']' after an array element, got ${show(i)}`);
      }
    }
    if (c === '"') return string();
    if (c === 't') return literal('true');
    if (c === 'f') return literal('false');
    if (c === 'n') return literal('null');
    if (c === '-' || (c !== undefined && c >= '0' && c <= '9')) return number();
    if (c === "'") fail('strings need double quotes, not single quotes');
    fail(`unexpected ${show(i)}: expected a JSON value`);
  };
  try {
    if (text.charCodeAt(0) === 0xfeff) i = 1; // a byte order mark
    value(0);
    ws();
    if (i < n) fail(`unexpected ${show(i)} after the end of the JSON value`);
    return null;
  } catch (err) {
    if (err instanceof ScanError) return { offset: err.offset, reason: err.reason };
    throw err;
  }
}

/**
 * Parses JSON text. Throws a PolicyError with code INVALID_JSON whose message names the line and
 * column of the problem, e.g. `invalid JSON at line 3, column 1: trailing comma before '}'`.
 */
export function parseJson(text: string, what = 'input'): unknown {
  if (text.trim() === '') {
    throw new PolicyError('INVALID_JSON', `invalid JSON in ${what}: it is empty`);
  }
  try {
    return JSON.parse(text.charCodeAt(0) === 0xfeff ? text.slice(1) : text) as unknown;
  } catch (err) {
    const found = findJsonError(text);
    if (!found) throw new PolicyError('INVALID_JSON', `invalid JSON in ${what}: ${(err as Error).message}`);
    const { line, column } = lineColumn(text, found.offset);
    throw new PolicyError('INVALID_JSON', `invalid JSON in ${what} at line ${line}, column ${column}: ${found.reason}`);
  }
}
