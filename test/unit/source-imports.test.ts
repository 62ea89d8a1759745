// How the modules of src/ depend on each other: no import circle anywhere (master/app.ts and its
// routes had one), so that each module can be read and loaded on its own. Type-only imports do not
// count: they are gone at run time.
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { repoRoot } from '../helpers/sandbox.js';

const src = path.join(repoRoot, 'src');

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const full = path.join(dir, e.name);
    if (e.isDirectory()) return sources(full);
    return e.name.endsWith('.ts') && !e.name.endsWith('.d.ts') ? [full] : [];
  });
}

/** The relative modules a file imports or re-exports at run time. */
function runtimeImports(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  const found = text.matchAll(/^\s*(?:import|export)\s+(?!type\b)(?:[^'";]*?\s+from\s+)?'(\.{1,2}\/[^']+)'/gm);
  return [...found].map((m) => path.resolve(path.dirname(file), m[1]!.replace(/\.js$/, '.ts')));
}

function circles(files: string[]): string[][] {
  const graph = new Map(files.map((f) => [f, runtimeImports(f)]));
  const found: string[][] = [];
  const done = new Set<string>();
  const trail: string[] = [];
  const visit = (file: string) => {
    const at = trail.indexOf(file);
    if (at >= 0) {
      found.push([...trail.slice(at), file]);
      return;
    }
    if (done.has(file)) return;
    trail.push(file);
    for (const next of graph.get(file) ?? []) visit(next);
    trail.pop();
    done.add(file);
  };
  for (const file of files) visit(file);
  return found;
}

describe('imports in src/', () => {
  it('form no circle', () => {
    const found = circles(sources(src)).map((c) => c.map((f) => path.relative(src, f)).join(' -> '));
    expect(found).toEqual([]);
  });

  it('master routes do not import app.ts (app.ts imports them)', () => {
    const app = path.join(src, 'master/app.ts');
    for (const route of sources(path.join(src, 'master/routes'))) expect(runtimeImports(route)).not.toContain(app);
  });
});
