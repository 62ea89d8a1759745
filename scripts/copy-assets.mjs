// tsc only emits JavaScript: the files the code reads at run time beside its modules (the CSI
// driver's src/csi/csi.proto) are copied to the same place under dist/.
import { cpSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const ASSETS = ['.proto'];
for (const entry of readdirSync(path.join(root, 'src'), { recursive: true, withFileTypes: true })) {
  if (!entry.isFile() || !ASSETS.includes(path.extname(entry.name))) continue;
  const from = path.join(entry.parentPath, entry.name);
  cpSync(from, path.join(root, 'dist', path.relative(path.join(root, 'src'), from)));
}
