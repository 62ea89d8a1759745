// Seeded randomness, so that a failing round can be run again: every scenario and every round gets
// its own generator derived from (seed, scenario name, round), independent of what ran before it.

/** A small, well-known 32-bit generator (mulberry32): uniform floats in [0, 1). */
export function mulberry32(state: number): () => number {
  let a = state >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** FNV-1a of a string, to mix names into seeds. */
function hash(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

export class Rng {
  private readonly next: () => number;

  constructor(readonly seed: number, readonly label = '') {
    this.next = mulberry32(seed ^ hash(label));
  }

  /** A generator for a part of this one (a scenario, a round): same inputs, same numbers. */
  derive(label: string | number): Rng {
    return new Rng(this.seed, `${this.label}/${label}`);
  }

  float(): number {
    return this.next();
  }

  /** An integer in [min, max]. */
  int(min: number, max: number): number {
    return min + Math.floor(this.next() * (max - min + 1));
  }

  pick<T>(items: readonly T[]): T {
    if (items.length === 0) throw new Error('pick from an empty list');
    return items[Math.floor(this.next() * items.length)]!;
  }

  chance(p: number): boolean {
    return this.next() < p;
  }

  /** A fresh Docker Mount ID: 64 hex digits, as dockerd sends. */
  mountId(): string {
    let out = '';
    while (out.length < 64) out += Math.floor(this.next() * 4294967296).toString(16).padStart(8, '0');
    return out.slice(0, 64);
  }

  shuffle<T>(items: readonly T[]): T[] {
    const out = [...items];
    for (let i = out.length - 1; i > 0; i--) {
      const j = Math.floor(this.next() * (i + 1));
      [out[i], out[j]] = [out[j]!, out[i]!];
    }
    return out;
  }
}
