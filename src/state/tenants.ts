// Tenant policies: the current revision under tenants/, every revision ever uploaded under
// tenant-history/ (kept after a delete, so that revisions continue and old ones stay readable).

import type { TenantPolicy } from '../policy/types.js';
import { CONFLICT, type RecordKV } from './record-kv.js';
import type { TenantRecord } from './records.js';

/** Writes revision + 1 (continuing after a delete) and its history copy in one transaction. */
export function putTenant(db: RecordKV, name: string, policy: TenantPolicy): Promise<TenantRecord> {
  const key = db.keys.tenant(name);
  return db.cas(`upload of tenant ${name}`, async () => {
    const current = await db.kv.get(key);
    let previous: number;
    if (current) {
      previous = db.parse<TenantRecord>(current).revision;
    } else {
      const last = (await db.kv.list(db.keys.tenantHistory(name))).at(-1);
      previous = last ? db.parse<TenantRecord>(last).revision : 0;
    }
    const record: TenantRecord = { name, policy, revision: previous + 1, uploadedAt: new Date().toISOString() };
    const value = JSON.stringify(record);
    const historyKey = db.keys.tenantRevision(name, record.revision);
    const ok = await db.kv.transaction({
      absent: current ? [historyKey] : [key, historyKey],
      unchanged: current ? [{ key, modRevision: current.modRevision }] : [],
      put: [
        { key, value },
        { key: historyKey, value },
      ],
    });
    return ok ? record : CONFLICT;
  });
}
