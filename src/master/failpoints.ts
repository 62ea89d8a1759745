// Test-only pauses at named points of the create flow, so that integration tests can kill a master
// at an exact step ("master killed mid-request"). Set VOLMASTER_FAILPOINTS to a comma-separated list
// of NAME=MILLISECONDS; with it unset (always, in production) every pause resolves at once.
//
//   after-intent        the intent is written, the image not yet created
//   after-image-create  the image exists, the record is not yet written

export type FailpointName = 'after-intent' | 'after-image-create';

export type Failpoints = Partial<Record<FailpointName, number>>;

export function parseFailpoints(text: string | undefined): Failpoints {
  const out: Failpoints = {};
  for (const part of (text ?? '').split(',').map((s) => s.trim()).filter(Boolean)) {
    const [name, ms] = part.split('=');
    if ((name === 'after-intent' || name === 'after-image-create') && ms !== undefined && /^\d+$/.test(ms)) {
      out[name] = Number(ms);
    } else {
      throw new Error(`VOLMASTER_FAILPOINTS: ${JSON.stringify(part)} is not after-intent=MS or after-image-create=MS`);
    }
  }
  return out;
}

export async function failpoint(points: Failpoints | undefined, name: FailpointName): Promise<void> {
  const ms = points?.[name];
  if (ms) await new Promise((resolve) => setTimeout(resolve, ms));
}
