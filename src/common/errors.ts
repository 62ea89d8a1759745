// The text of anything thrown, for a log line or a one-line message to a person.

/** The message of anything thrown. */
export function messageOf(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}
