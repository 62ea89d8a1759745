// API tokens: one per host (role host), per monitoring system (read-only) or per admin, created,
// listed and revoked with volcli, and kept in etcd as the SHA-256 of the token only.
//
// Why SHA-256 and not a password KDF (scrypt, argon2): a token is 256 bits from the system's CSPRNG,
// not something a person chose, so nobody can guess it or search for it from its hash, however
// fast the hash is; a KDF's cost is there to slow the search over guessable passwords, which does
// not exist here, and it would cost every API request tens of milliseconds of CPU. SHA-256 lets
// the master find a token with one etcd read (the key is the hash) and lets whoever can read etcd
// learn nothing usable.
//
// Keys: tokens/<sha256> holds the record, token-names/<name> the hash (names are unique); both are
// written and deleted in one transaction.

import { createHash, randomBytes } from 'node:crypto';
import type { RecordKV } from './record-kv.js';
import type { Role, TokenRecord } from './records.js';
import { CONFLICT } from './record-kv.js';

/** Every token starts with this, so that a leaked one is easy to recognise (and grep for). */
export const TOKEN_PREFIX = 'vpt_';

/** A new token: the prefix and 32 random bytes, base64url. */
export function newToken(): string {
  return `${TOKEN_PREFIX}${randomBytes(32).toString('base64url')}`;
}

/** The SHA-256 of a token, hex: what is stored and looked up. */
export function tokenHash(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex');
}

/** Stores a token; null when a token of that name exists (nothing is written then). */
export async function createToken(db: RecordKV, token: string, fields: { name: string; role: Role; createdBy: string }): Promise<TokenRecord | null> {
  const record: TokenRecord = { ...fields, hash: tokenHash(token), createdAt: new Date().toISOString() };
  const nameKey = db.keys.tokenName(record.name);
  const hashKey = db.keys.token(record.hash);
  const ok = await db.kv.transaction({
    absent: [nameKey, hashKey],
    put: [
      { key: hashKey, value: JSON.stringify(record) },
      { key: nameKey, value: JSON.stringify({ hash: record.hash }) },
    ],
  });
  return ok ? record : null;
}

export function findToken(db: RecordKV, hash: string): Promise<TokenRecord | null> {
  if (!/^[0-9a-f]{64}$/.test(hash)) return Promise.resolve(null);
  return db.read<TokenRecord>(db.keys.token(hash));
}

/** Every token, sorted by name. */
export async function listTokens(db: RecordKV): Promise<TokenRecord[]> {
  return (await db.readAll<TokenRecord>(db.keys.tokens)).sort((a, b) => a.name.localeCompare(b.name));
}

/** Deletes the token of that name (both keys, in one transaction); returns it, or null when there was none. */
export function revokeToken(db: RecordKV, name: string): Promise<TokenRecord | null> {
  const nameKey = db.keys.tokenName(name);
  return db.cas(`revocation of token ${name}`, async () => {
    const entry = await db.kv.get(nameKey);
    if (!entry) return null;
    const { hash } = db.parse<{ hash: string }>(entry);
    const record = await db.read<TokenRecord>(db.keys.token(hash));
    const ok = await db.kv.transaction({ unchanged: [{ key: nameKey, modRevision: entry.modRevision }], delete: [nameKey, db.keys.token(hash)] });
    return ok ? record : CONFLICT;
  });
}
