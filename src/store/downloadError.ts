// The one error type of the model download (modelDownload.ts and the HTTPS layer under it), so a
// caller can tell a cancel from a bad file from a network that may work next time.

/**
 * What went wrong. `aborted`, `network`, `timeout`, `tls` and `proxy` keep the partial file for a
 * later resume (its bytes are a correct prefix); `size` and `checksum` delete it.
 */
export type DownloadErrorCode = 'http' | 'size' | 'checksum' | 'redirect' | 'network' | 'timeout' | 'tls' | 'proxy' | 'aborted';

/** A failed download, with a message a user can act on. */
export class DownloadError extends Error {
  constructor(
    readonly code: DownloadErrorCode,
    message: string,
    /** The HTTP status for `http` errors. */
    readonly status?: number,
  ) {
    super(message);
    this.name = 'DownloadError';
  }
}
