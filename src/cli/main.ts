#!/usr/bin/env node
// volcli: the command line of volplugin's control plane. See docs/cli.md or `volcli help`.

import { messageOf } from '../common/errors.js';
import { run } from './program.js';

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

run(process.argv.slice(2), {
  stdout: (text) => process.stdout.write(text),
  stderr: (text) => process.stderr.write(text),
  readStdin,
  stdinIsTTY: process.stdin.isTTY === true,
  ...(process.stderr.isTTY ? { progress: process.stderr } : {}),
  env: process.env,
})
  .then((code) => {
    process.exitCode = code;
  })
  .catch((err: unknown) => {
    process.stderr.write(`volcli: ${messageOf(err)}\n`);
    process.exitCode = 1;
  });
