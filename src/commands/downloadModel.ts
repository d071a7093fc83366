// The vscode side of the model download: a cancellable progress notification around
// ensureModel (store/modelCache.ts), the Hugging Face token from SecretStorage (asked for, and
// kept, only when the server answers 401/403), VS Code's proxy settings (http.proxy, http.noProxy,
// http.proxyStrictSSL, http.proxyAuthorization: application settings a workspace cannot set), and
// the file in the extension's global storage.
// Not registered as a palette command yet: the first-use flow that offers it belongs with the
// engine's model loading (issue 5, "Model").

import * as vscode from 'vscode';
import { ensureModel } from '../store/modelCache';
import { DownloadError } from '../store/modelDownload';
import { DEFAULT_MODEL, type ModelManifest } from '../engine/model/modelManifest';
import { proxySettingsFromVscode, type ProxySettings, redact } from '../store/proxySettings';
import type { GemmaServices } from '../services';

/** SecretStorage key of the Hugging Face token. */
export const HF_TOKEN_SECRET = 'gemmaTune.huggingFaceToken';

function mb(bytes: number): string {
  return (bytes / 1e6).toFixed(1);
}

/** VS Code's proxy settings with the environment as fallback; ignored values are logged. */
function proxySettings(log: GemmaServices['log']): ProxySettings {
  const http = vscode.workspace.getConfiguration('http');
  const { settings, problems } = proxySettingsFromVscode(
    { proxy: http.get('proxy'), noProxy: http.get('noProxy'), proxyStrictSSL: http.get('proxyStrictSSL'), proxyAuthorization: http.get('proxyAuthorization') },
    process.env,
  );
  for (const p of problems) log.warn(p);
  if (settings.proxy) log.info(`download: through the proxy ${redact(settings.proxy)}${settings.strictSSL ? '' : ' (certificates not checked: no token is sent)'}`);
  return settings;
}

/**
 * Downloads (or finds) a model in global storage with a progress notification; resolves with
 * its path, or undefined when the user cancelled (the partial file is kept for a resume).
 */
export async function downloadModel(
  s: Pick<GemmaServices, 'context' | 'log'>,
  manifest: ModelManifest = DEFAULT_MODEL,
  /** Also told the fraction done (undefined while the size is unknown), e.g. for the status bar. */
  onFraction?: (fraction: number | undefined) => void,
): Promise<string | undefined> {
  const storage = s.context.globalStorageUri.fsPath;
  const proxy = proxySettings(s.log);
  for (let attempt = 0; attempt < 2; attempt++) {
    const token = await s.context.secrets.get(HF_TOKEN_SECRET);
    try {
      return await vscode.window.withProgress(
        { location: vscode.ProgressLocation.Notification, title: `Gemma: downloading ${manifest.title}`, cancellable: true },
        async (progress, cancel) => {
          const abort = new AbortController();
          cancel.onCancellationRequested(() => abort.abort());
          let reported = 0;
          const result = await ensureModel(storage, manifest, {
            token,
            proxy,
            signal: abort.signal,
            onProgress: (p) => {
              onFraction?.(p.total ? p.received / p.total : undefined);
              if (!p.total) return progress.report({ message: `${mb(p.received)} MB` });
              const pct = (100 * p.received) / p.total;
              progress.report({ increment: pct - reported, message: `${mb(p.received)} of ${mb(p.total)} MB${p.resumedFrom ? ' (resumed)' : ''}` });
              reported = pct;
            },
          });
          if (result.download) s.log.info(`downloaded ${manifest.file}: ${result.download.size} bytes, sha256 ${result.download.sha256} (checked: ${result.download.verifiedBy})`);
          return result.path;
        },
      );
    } catch (err) {
      if (err instanceof DownloadError && err.code === 'aborted') {
        s.log.info(err.message);
        return undefined;
      }
      const denied = err instanceof DownloadError && (err.status === 401 || err.status === 403);
      if (denied && proxy.proxy && !proxy.strictSSL) {
        // Asking for a token would not help: it is never sent over a connection whose certificate was not checked.
        throw new Error(`${(err as Error).message}; with http.proxyStrictSSL off no token is sent, so a gated model cannot be downloaded through this proxy`, { cause: err });
      }
      if (denied && attempt === 0) {
        const entered = await vscode.window.showInputBox({
          title: `${manifest.repo} needs a Hugging Face token`,
          prompt: 'A read token from huggingface.co/settings/tokens (kept in VS Code\'s secret storage)',
          password: true,
          ignoreFocusOut: true,
        });
        if (!entered) return undefined;
        await s.context.secrets.store(HF_TOKEN_SECRET, entered.trim());
        continue;
      }
      throw err;
    }
  }
  return undefined;
}
