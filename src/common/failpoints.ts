// Test-only failpoints of the daemons, parsed one way: an environment variable (VOLMASTER_FAILPOINTS,
// VOLPLUGIN_FAILPOINTS) holding a comma-separated list of NAME (switched on) or NAME=MS (a pause
// of MS milliseconds at that point). Production never sets them; a daemon that finds one logs a
// warning at start. Each daemon names its points and what they do in its own failpoints module.

/** The points that are set: a name maps to its milliseconds (0 for a bare NAME). */
export type Failpoints<N extends string> = Partial<Record<N, number>>;

/** Parses `text` (the value of `variable`); an unknown name or a bad value throws, naming the known ones. */
export function parseFailpoints<N extends string>(variable: string, text: string | undefined, known: readonly N[]): Failpoints<N> {
  const out: Failpoints<N> = {};
  for (const part of (text ?? '').split(',').map((s) => s.trim()).filter(Boolean)) {
    const eq = part.indexOf('=');
    const name = (eq < 0 ? part : part.slice(0, eq)) as N;
    const ms = eq < 0 ? '0' : part.slice(eq + 1);
    if (!known.includes(name) || !/^\d+$/.test(ms)) {
      throw new Error(`${variable}: ${JSON.stringify(part)} is not NAME or NAME=MS with NAME one of ${known.join(', ')}`);
    }
    out[name] = Number(ms);
  }
  return out;
}

/** Whether the point is set. */
export function failpointSet<N extends string>(points: Failpoints<N> | undefined, name: N): boolean {
  return points?.[name] !== undefined;
}

/** Pauses for the point's milliseconds when it is set with NAME=MS. */
export async function failpointPause<N extends string>(points: Failpoints<N> | undefined, name: N): Promise<void> {
  const ms = points?.[name];
  if (ms) await new Promise((resolve) => setTimeout(resolve, ms));
}
