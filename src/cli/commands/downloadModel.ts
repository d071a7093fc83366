// `gemma-tune download-model`: the default model into the command line's cache folder, the first
// place `gemma-tune demo` looks, through the extension's own download (https at every hop, resumable,
// size and sha256 checked, atomic). The proxy comes from the environment (HTTPS_PROXY, NO_PROXY and
// their usual variants); a token for a gated model from HF_TOKEN, sent to huggingface.co only.
// Ctrl+C stops it with the part kept: the next run resumes.

import * as path from 'node:path';
import type { CliCommand } from '../command';
import { parseFlags } from '../args';
import { cacheDir } from '../demo/modelLocation';
import { ensureModel } from '../../store/modelCache';
import { DEFAULT_MODEL } from '../../engine/model/modelManifest';
import type { DownloadProgress } from '../../store/modelDownload';
import { proxySettingsFromEnv, redact } from '../../store/proxySettings';

/** Progress on stderr: rewritten in place on a terminal, every 10% otherwise (logs, CI). */
function progressPrinter(): (p: DownloadProgress) => void {
  let lastTenth = -1;
  return (p) => {
    const mb = (n: number) => (n / 1e6).toFixed(1);
    const of = p.total ? ` of ${mb(p.total)} MB` : ' MB';
    if (process.stderr.isTTY) return void process.stderr.write(`\r${mb(p.received)}${of}${p.resumedFrom ? ' (resumed)' : ''}   `);
    const tenth = p.total ? Math.floor((10 * p.received) / p.total) : -1;
    if (tenth > lastTenth) {
      lastTenth = tenth;
      process.stderr.write(`${mb(p.received)}${of}\n`);
    }
  };
}

export const downloadModelCommand: CliCommand = {
  name: 'download-model',
  usage: 'gemma-tune download-model [--cache DIR]',
  summary: `Download ${DEFAULT_MODEL.file} into the cache folder ($GEMMA_TUNE_CACHE, else ~/.cache/gemma-tune) and print its path; resumes, checks size and sha256. Proxy from HTTPS_PROXY / NO_PROXY, token from HF_TOKEN.`,
  async run(argv) {
    const p = parseFlags(argv, { values: ['cache'] });
    const dir = p.values.has('cache') ? path.resolve(p.values.get('cache')!) : cacheDir();
    const proxy = proxySettingsFromEnv(process.env);
    if (proxy.proxy) process.stderr.write(`through the proxy ${redact(proxy.proxy)}\n`);
    const abort = new AbortController();
    const onSigint = () => abort.abort();
    process.once('SIGINT', onSigint);
    try {
      const got = await ensureModel(dir, DEFAULT_MODEL, { token: process.env.HF_TOKEN || undefined, proxy, signal: abort.signal, onProgress: progressPrinter() });
      if (process.stderr.isTTY) process.stderr.write('\n');
      if (got.download) process.stderr.write(`downloaded ${got.download.size} bytes, sha256 ${got.download.sha256} (checked: ${got.download.verifiedBy})\n`);
      else process.stderr.write('already downloaded and verified\n');
      process.stdout.write(`${got.path}\n`);
    } catch (e) {
      if (process.stderr.isTTY) process.stderr.write('\n'); // off the progress line
      throw e;
    } finally {
      process.off('SIGINT', onSigint);
    }
  },
};
