// A stack of compensating steps: each step of a mount that changes the host or the cluster pushes
// the step that reverses it; if a later step fails, `rollback` runs them newest first. A failing
// undo step does not stop the others (each is logged), so that as little as possible is left over.

export interface UndoLog {
  warn(obj: object, msg: string): void;
}

interface Step {
  what: string;
  undo: () => Promise<void>;
}

export class UndoStack {
  private steps: Step[] = [];

  /** Registers how to reverse the step just done. */
  push(what: string, undo: () => Promise<void>): void {
    this.steps.push({ what, undo });
  }

  get size(): number {
    return this.steps.length;
  }

  /** Forgets every step: the operation succeeded and its effects stay. */
  commit(): void {
    this.steps = [];
  }

  /** Reverses every step, newest first. Returns the steps whose undo failed (with why). */
  async rollback(log?: UndoLog): Promise<Array<{ what: string; error: Error }>> {
    const failed: Array<{ what: string; error: Error }> = [];
    while (this.steps.length > 0) {
      const step = this.steps.pop()!;
      try {
        await step.undo();
      } catch (err) {
        const error = err instanceof Error ? err : new Error(String(err));
        failed.push({ what: step.what, error });
        log?.warn({ step: step.what, err: error.message }, 'could not undo a step of a failed operation; the convergence loop will retry');
      }
    }
    return failed;
  }
}
