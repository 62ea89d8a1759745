// The steps of a mount or an unmount, timed once for both of their readers: the operation's
// StepRecorder (its log line and the bench: src/common/steps.ts) and the step histograms an
// operator alerts on. Sub-steps (dotted names such as "map.rbd-fuse" or "format.probe") go to the
// log line only, so that the histogram's `step` label stays the short, documented set and no time
// is counted twice.

import type { Histogram } from 'prom-client';
import type { StepRecorder } from '../common/steps.js';
import { timeStep } from './families.js';

export class MeteredSteps implements StepRecorder {
  /** The first top-level step that failed (the `step` label of the failure counter). */
  failed: string | undefined;

  constructor(
    private readonly inner: StepRecorder,
    private readonly histogram: Histogram<string>,
    private readonly mapper: string,
  ) {}

  time<T>(step: string, fn: () => Promise<T>): Promise<T> {
    const run = () => this.inner.time(step, fn);
    if (step.includes('.')) return run();
    return timeStep(this.histogram, { mapper: this.mapper, step }, run).catch((err: unknown) => {
      this.failed ??= step;
      throw err;
    });
  }
}
