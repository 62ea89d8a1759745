// The convergence loop (the Flocker agent model): observe the host's state (observe.ts), report it
// to etcd under this host (report.ts), plan the actions that make the host match what Docker asked
// for (plan.ts, pure), and perform them (actions.ts). It runs at start, every --converge-seconds,
// and soon after anything relevant changes (triggers.ts).

import { convergenceActions, convergenceProblems, convergenceRounds } from '../../metrics/families.js';
import type { RateLimiter } from '../../ratelimit/index.js';
import { messageOf } from '../errors.js';
import type { ConvergenceActions } from './actions.js';
import type { HostObserver } from './observe.js';
import { planConvergence, type Observation, type Plan } from './plan.js';
import type { HostReporter } from './report.js';
import type { ConvergenceTriggers } from './triggers.js';

export interface LoopLog {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
  debug(obj: object, msg: string): void;
}

export interface ConvergenceParts {
  observer: HostObserver;
  actions: ConvergenceActions;
  reporter: HostReporter;
  triggers: ConvergenceTriggers;
  /** Sweeps the cgroups made ahead for containers that never started, after every round. */
  limits: Pick<RateLimiter, 'sweepAhead'>;
  intervalMs: number;
  log: LoopLog;
}

export class Convergence {
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<void> | null = null;
  private again = false;
  private stopped = false;
  private problems: string[] = [];
  private planProblems: string[] = [];
  /** The last plan (for tests and the debug log). */
  lastPlan: Plan | null = null;
  rounds = 0;

  constructor(private readonly parts: ConvergenceParts) {
    this.parts.triggers.connect((reason) => this.trigger(reason));
  }

  /** Runs the first round, then keeps converging in the background. */
  async start(): Promise<void> {
    await this.runNow('start');
    this.schedule();
    this.parts.triggers.followDockerEvents();
  }

  /** Asks for a round soon (coalesced: many triggers make one round). */
  trigger(reason: string): void {
    if (this.stopped) return;
    this.parts.log.debug({ reason }, 'convergence triggered');
    if (this.running) {
      this.again = true;
      return;
    }
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.runNow(reason), 100);
  }

  /** Runs one round now (or waits for the one that is running and runs another). */
  async runNow(reason: string): Promise<void> {
    if (this.running) {
      this.again = true;
      await this.running;
      return;
    }
    this.running = (async () => {
      try {
        do {
          this.again = false;
          await this.round(reason).then(
            () => convergenceRounds.inc({ result: 'ok' }),
            (err: unknown) => {
              convergenceRounds.inc({ result: 'error' });
              this.parts.log.error({ err: messageOf(err) }, 'convergence round failed');
            },
          );
        } while (this.again && !this.stopped);
      } finally {
        this.running = null;
        this.schedule();
      }
    })();
    await this.running;
  }

  private schedule(): void {
    if (this.stopped) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.runNow('interval'), this.parts.intervalMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    await this.running?.catch(() => undefined);
    await this.parts.triggers.stop();
  }

  /** Writes the host report now (after a mount or unmount, and every round). */
  async publishReport(): Promise<void> {
    await this.parts.reporter.publish([...this.planProblems, ...this.problems]);
  }

  private async round(reason: string): Promise<void> {
    const started = Date.now();
    this.rounds++;
    const observation = await this.parts.observer.observe();
    const plan = planConvergence(observation);
    this.lastPlan = plan;
    await this.report(observation, plan);
    const failures: string[] = [];
    for (const action of plan.actions) {
      try {
        await this.parts.actions.act(action);
        if (action.kind !== 'apply-limits' || action.changed) convergenceActions.inc({ action: action.kind, result: 'ok' });
      } catch (err) {
        convergenceActions.inc({ action: action.kind, result: 'error' });
        failures.push(`${action.kind} ${action.volume}: ${messageOf(err)}`);
        this.parts.log.warn({ action: action.kind, volume: action.volume, err: messageOf(err) }, 'convergence action failed; retried next round');
      }
    }
    await this.parts.limits.sweepAhead().catch(() => undefined);
    this.problems = failures;
    convergenceProblems.set(plan.problems.length + failures.length);
    await this.parts.triggers.ensureWatches();
    const acted = plan.actions.filter((a) => a.kind !== 'apply-limits' || a.changed);
    const level = acted.length > 0 || failures.length > 0 ? 'info' : 'debug';
    this.parts.log[level](
      { reason, ms: Date.now() - started, actions: acted.map((a) => `${a.kind} ${a.volume}`), problems: [...plan.problems, ...failures] },
      'convergence round done',
    );
  }

  private async report(o: Observation, plan: Plan): Promise<void> {
    if (!o.leaseId) return;
    this.planProblems = plan.problems;
    try {
      await this.publishReport();
    } catch (err) {
      this.parts.log.warn({ err: messageOf(err) }, 'could not report to etcd this round');
    }
  }
}
