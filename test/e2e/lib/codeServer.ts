// Starts and stops a code-server (VS Code 1.139 in the browser) for one test session, with its
// own user data, extensions folder, settings and workspace, on a free port of 127.0.0.1.

import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { createWriteStream, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';

export const ROOT = path.resolve(__dirname, '../../..');
const CS_BIN = path.join(ROOT, '.e2e/cs/node_modules/.bin');

/** Keeps the window clean: no welcome page, chat side bar, tips or update checks. */
const USER_SETTINGS = {
  'workbench.startupEditor': 'none',
  'workbench.secondarySideBar.defaultVisibility': 'hidden',
  'chat.disableAIFeatures': true,
  'workbench.tips.enabled': false,
  'telemetry.telemetryLevel': 'off',
  'extensions.autoCheckUpdates': false,
  'extensions.autoUpdate': false,
  'update.mode': 'none',
  'security.workspace.trust.enabled': false,
  'window.commandCenter': false,
};

export interface Session {
  dir: string;
  workspace: string;
  extensionsDir: string;
  userDataDir: string;
  eventsFile: string;
  port: number;
  url: string;
  server?: ChildProcess;
}

/** A free TCP port on 127.0.0.1. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

/** Session folders not removed yet: a part that throws before its own cleanup still leaves nothing behind. */
const liveDirs = new Set<string>();
const keep = () => process.env.GEMMA_TUNE_E2E_KEEP === '1';
let exitHook = false;

function removeDir(dir: string): void {
  liveDirs.delete(dir);
  if (keep()) console.log(`  (kept ${dir})`);
  else rmSync(dir, { recursive: true, force: true, maxRetries: 3 });
}

/** Fresh folders for one session: user data, extensions, a workspace with `files`. */
export async function newSession(name: string, files: Record<string, string>): Promise<Session> {
  const dir = mkdtempSync(path.join(tmpdir(), `gemma-e2e-${name}-`));
  liveDirs.add(dir);
  if (!exitHook) {
    exitHook = true;
    process.once('exit', () => [...liveDirs].forEach(removeDir));
  }
  const workspace = path.join(dir, 'workspace');
  const extensionsDir = path.join(dir, 'ext');
  const userDataDir = path.join(dir, 'ud');
  for (const d of [workspace, extensionsDir, path.join(userDataDir, 'User')]) mkdirSync(d, { recursive: true });
  for (const [f, text] of Object.entries(files)) writeFileSync(path.join(workspace, f), text);
  writeFileSync(path.join(userDataDir, 'User/settings.json'), JSON.stringify(USER_SETTINGS, null, 2));
  // An empty config, so ~/.config/code-server/config.yaml (password auth) is not read.
  writeFileSync(path.join(dir, 'config.yaml'), '');
  const port = await freePort();
  return { dir, workspace, extensionsDir, userDataDir, eventsFile: path.join(dir, 'events.jsonl'), port, url: `http://127.0.0.1:${port}` };
}

function commonArgs(s: Session): string[] {
  return ['--config', path.join(s.dir, 'config.yaml'), '--user-data-dir', s.userDataDir, '--extensions-dir', s.extensionsDir];
}

function csEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  // The code-server bin is `#!/usr/bin/env node` and needs Node 24 first in PATH.
  return { ...process.env, PATH: `${CS_BIN}:${process.env.PATH ?? ''}`, ...extra };
}

/** Installs a .vsix into the session's extensions folder (the way a user installs it). */
export function installVsix(s: Session, vsix: string): void {
  execFileSync(path.join(CS_BIN, 'code-server'), [...commonArgs(s), '--install-extension', vsix, '--force'], {
    env: csEnv({}),
    stdio: 'pipe',
  });
}

/**
 * Starts code-server; resolves once /healthz answers. `log` receives its stdout and stderr.
 * `workspaceTrust` keeps VS Code's Workspace Trust on (the session's user settings must enable it
 * too), so an untrusted folder opens in Restricted Mode; otherwise every folder is trusted.
 */
export async function startServer(s: Session, opts: { env?: Record<string, string>; extraArgs?: string[]; log: string; workspaceTrust?: boolean }): Promise<void> {
  const out = createWriteStream(opts.log);
  const args = [
    ...commonArgs(s),
    '--auth', 'none',
    '--bind-addr', `127.0.0.1:${s.port}`,
    '--disable-telemetry', '--disable-update-check',
    ...(opts.workspaceTrust ? [] : ['--disable-workspace-trust']),
    '--disable-getting-started-override', '--ignore-last-opened',
    ...(opts.extraArgs ?? []),
  ];
  // Its own process group, so stopServer can take down the extension host and pty host with it.
  const server = spawn(path.join(CS_BIN, 'code-server'), args, { env: csEnv(opts.env ?? {}), detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  server.stdout?.pipe(out);
  server.stderr?.pipe(out);
  s.server = server;
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    if (server.exitCode !== null) throw new Error(`code-server exited with code ${server.exitCode}; see ${opts.log}`);
    try {
      if ((await fetch(`${s.url}/healthz`)).ok) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`code-server did not answer /healthz within 60 s; see ${opts.log}`);
}

/** Stops code-server and everything it started (its process group). */
export async function stopServer(s: Session): Promise<void> {
  const server = s.server;
  if (!server?.pid || server.exitCode !== null || server.signalCode !== null) return;
  const exited = new Promise((r) => server.once('exit', r));
  try {
    process.kill(-server.pid, 'SIGTERM');
  } catch {
    return;
  }
  const timer = setTimeout(() => {
    try {
      process.kill(-server.pid!, 'SIGKILL');
    } catch {
      // already gone
    }
  }, 5000);
  await exited;
  clearTimeout(timer);
}

/**
 * Stops the session's code-server and removes its temporary folder (workspace, user data, events);
 * GEMMA_TUNE_E2E_KEEP=1 keeps the folder to look into after a failure.
 */
export async function endSession(s: Session): Promise<void> {
  try {
    await stopServer(s);
  } finally {
    removeDir(s.dir);
  }
}

/** The workbench URL that opens `folder`, with optional query parameters. */
export function workbenchUrl(s: Session, query: Record<string, string> = {}): string {
  const q = new URLSearchParams({ folder: s.workspace, ...query });
  return `${s.url}/?${q.toString()}`;
}
