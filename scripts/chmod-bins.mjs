// tsc does not keep the executable bit: the bin entries of package.json must be runnable.
import { chmodSync, readFileSync } from 'node:fs';
const { bin } = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'));
for (const file of Object.values(bin)) chmodSync(new URL(`../${file}`, import.meta.url), 0o755);
