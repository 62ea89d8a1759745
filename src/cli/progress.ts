// Following a long operation (resize, remove, copy, backup, restore) until it ends: volcli polls the master's
// GET /v1/operations/:id and shows how far it is. On a terminal a progress bar (cli-progress) on
// stderr; otherwise plain lines on stderr, one per step and per tenth of a step, so that a log or a
// pipe gets a readable record; with --json nothing until the end (stdout gets the operation). An
// operation that failed or was interrupted becomes the error it carries (exit code 1).

import cliProgress from 'cli-progress';
import { Option } from 'commander';
import { ApiError, isErrorCode } from '../api/errors.js';
import type { OperationRecord } from '../state/records.js';
import type { Context } from './context.js';

/** How often volcli asks how far an operation is (the master writes progress at most once a second). */
export const POLL_MS = 500;

/** One line of progress: "resize tenant1/foo: growing image rbd/x to 2 GiB: 40% (32 of 80 objects)". */
export function progressLine(op: OperationRecord): string {
  const head = `${op.kind} ${op.tenant}/${op.volume}: ${op.message}`;
  if (op.total <= 1 && op.unit === 'steps') return head;
  const percent = op.total > 0 ? Math.floor((op.done / op.total) * 100) : 0;
  return `${head}: ${percent}% (${op.done} of ${op.total} ${op.unit})`;
}

/** Shows an operation's progress as it changes: a bar on a terminal, plain lines otherwise. */
interface Display {
  update(op: OperationRecord): void;
  stop(): void;
}

function lineDisplay(write: (text: string) => void): Display {
  let last = '';
  return {
    update(op) {
      // One line per step and per tenth of it: enough to follow, little enough for a log.
      const tenth = op.total > 0 ? Math.floor((op.done / op.total) * 10) : 0;
      const key = `${op.message}|${tenth}|${op.state}`;
      if (key === last || op.state !== 'running') return;
      last = key;
      write(`${progressLine(op)}\n`);
    },
    stop() {},
  };
}

function barDisplay(stream: NodeJS.WriteStream): Display {
  const bar = new cliProgress.SingleBar(
    { stream, format: '{what} [{bar}] {percentage}% {value}/{total} {unit}', hideCursor: true, clearOnComplete: true, etaBuffer: 20 },
    cliProgress.Presets.shades_classic,
  );
  let started = false;
  return {
    update(op) {
      const payload = { what: `${op.kind} ${op.tenant}/${op.volume}: ${op.message}`, unit: op.unit };
      if (!started) {
        bar.start(op.total, op.done, payload);
        started = true;
      } else {
        bar.setTotal(op.total);
        bar.update(op.done, payload);
      }
    },
    stop() {
      if (started) bar.stop();
    },
  };
}

/** The error an ended operation carries (failed, or interrupted by a master that stopped). */
function operationError(op: OperationRecord): ApiError {
  const code = op.error && isErrorCode(op.error.code) ? op.error.code : 'INTERNAL';
  const message = op.error?.message ?? `operation ${op.id} ended ${op.state} without saying why; see volcli operation show ${op.id}`;
  return new ApiError(code, message, op.error?.field ? { field: op.error.field } : {});
}

/**
 * Polls operation `id` (from `first`, as the master accepted it) until it is no longer running,
 * showing its progress unless --json; returns the finished operation, or throws its error.
 */
export async function followOperation(ctx: Context, first: OperationRecord): Promise<OperationRecord> {
  const api = await ctx.master();
  const display: Display | null = ctx.opts.json ? null : ctx.io.progress ? barDisplay(ctx.io.progress) : lineDisplay(ctx.io.stderr);
  let op = first;
  try {
    display?.update(op);
    while (op.state === 'running') {
      await new Promise((resolve) => setTimeout(resolve, POLL_MS));
      op = await api.getOperation(op.id);
      display?.update(op);
    }
  } finally {
    display?.stop();
  }
  if (op.state !== 'done') throw operationError(op);
  return op;
}

/** --no-wait: return once the master accepted the operation. */
export const noWaitOption = () => new Option('--no-wait', 'return once the operation is under way, printing its id (follow it with volcli operation show ID --follow)');

/**
 * The end of a command that started operation `op`: with --no-wait prints its id; otherwise follows
 * it to its end and prints its closing message (or `done`), or the operation as JSON.
 */
export async function finish(ctx: Context, op: OperationRecord, done?: string): Promise<void> {
  if (ctx.opts.wait === false) {
    ctx.print(`${op.kind} of ${op.tenant}/${op.volume} is under way: operation ${op.id} (volcli operation show ${op.id} --follow)\n`, op);
    return;
  }
  const ended = await followOperation(ctx, op);
  ctx.print(`${done ?? ended.message}\n`, ended);
}
