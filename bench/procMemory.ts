// A process's resident memory as Linux reports it (/proc), for the benchmarks: the current and peak size, and
// where it lies (heap, anonymous regions, mapped files). /proc counts file-mapped weights too, as a user's
// process monitor does.

import * as fs from 'node:fs';
import * as path from 'node:path';

/** Resident MB of a process (default this one): now, its peak (VmHWM), and now's anonymous and file-mapped parts. */
export function residentMB(pid: number | 'self' = 'self'): { now: number; peak: number; anon: number; file: number } {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const mb = (key: string) => Math.round(Number(new RegExp(`${key}:\\s+(\\d+)`).exec(status)?.[1] ?? NaN) / 1024);
  return { now: mb('VmRSS'), peak: mb('VmHWM'), anon: mb('RssAnon'), file: mb('RssFile') };
}

/** Resident MB by mapping (the heap, anonymous regions by size, each file), largest first. */
export function mapsSummary(pid: number | 'self' = 'self'): string {
  const agg = new Map<string, number>();
  let cur = '';
  for (const line of fs.readFileSync(`/proc/${pid}/smaps`, 'utf8').split('\n')) {
    const head = /^([0-9a-f]+)-([0-9a-f]+) \S+ \S+ \S+ \S+\s*(.*)$/.exec(line);
    if (head) {
      const size = (parseInt(head[2], 16) - parseInt(head[1], 16)) / 2 ** 20;
      cur = head[3] ? path.basename(head[3]) : size >= 64 ? `[anon ${Math.round(size)}M]` : '[anon small]';
    } else if (line.startsWith('Rss:')) {
      agg.set(cur, (agg.get(cur) ?? 0) + Number(line.split(/\s+/)[1]) / 1024);
    }
  }
  return [...agg].filter(([, mb]) => mb >= 1).sort((a, b) => b[1] - a[1]).slice(0, 10).map(([n, mb]) => `${Math.round(mb)} ${n}`).join(' | ');
}
