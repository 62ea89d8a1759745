// Reading a daemon's metrics as Prometheus does: scrape /metrics (with a token, over TLS), check the
// exposition with promtool, and look samples up by name and labels.
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** The samples of a text exposition (comments skipped). */
export function parseMetrics(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)/.exec(line);
    if (!m) throw new Error(`not an exposition line: ${line}`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]!] = l[2]!.replace(/\\(.)/g, '$1');
    samples.push({ name: m[1]!, labels, value: Number(m[3]) });
  }
  return samples;
}

/** The sum of the samples named `name` whose labels include `labels` (0 when there is none). */
export function valueOf(samples: Sample[], name: string, labels: Record<string, string> = {}): number {
  return samples
    .filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))
    .reduce((sum, s) => sum + s.value, 0);
}

/** The label values of `label` among the samples named `name`. */
export function labelValues(samples: Sample[], name: string, label: string): string[] {
  return [...new Set(samples.filter((s) => s.name === name && label in s.labels).map((s) => s.labels[label]!))].sort();
}

export interface ScrapeOptions {
  token?: string;
  /** CA file for an https URL. */
  ca?: string;
}

/** GET url: its status and body. */
export function fetchMetrics(url: string, options: ScrapeOptions = {}): Promise<{ status: number; body: string; headers: Record<string, string | string[] | undefined> }> {
  const https = url.startsWith('https:');
  const request = https ? httpsRequest : httpRequest;
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      {
        headers: options.token ? { authorization: `Bearer ${options.token}` } : {},
        ...(https && options.ca ? { ca: readFileSync(options.ca) } : {}),
        timeout: 10_000,
      },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body, headers: res.headers }));
      },
    );
    req.on('timeout', () => req.destroy(new Error(`${url}: no answer within 10 s`)));
    req.on('error', reject);
    req.end();
  });
}

/** Scrapes url, failing unless it answers 200. */
export async function scrape(url: string, options: ScrapeOptions = {}): Promise<string> {
  const { status, body } = await fetchMetrics(url, options);
  if (status !== 200) throw new Error(`${url} answered ${status}: ${body.slice(0, 300)}`);
  return body;
}

/** `promtool check metrics` on an exposition: its exit code and what it printed. */
export function promtoolCheckMetrics(text: string): Promise<{ code: number; output: string }> {
  return new Promise((resolve, reject) => {
    const child = execFile('promtool', ['check', 'metrics'], { timeout: 60_000 }, (err, stdout, stderr) => {
      if (err && typeof (err as { code?: unknown }).code !== 'number') return reject(err);
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, output: `${stdout}${stderr}` });
    });
    child.stdin!.end(text);
  });
}
