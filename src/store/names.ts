// Task folder names: a display name ("Bug or feature?") becomes a folder name that is safe on
// every OS and in git (`bug-or-feature`). Pure: no file system, no vscode.

const MAX_FOLDER_LENGTH = 64;

// Device names Windows refuses as file names, with or without an extension.
const WINDOWS_RESERVED = /^(con|prn|aux|nul|com[0-9]|lpt[0-9])$/;

/** Turns a display name into a lower-case folder name of [a-z0-9-_], never empty or reserved. */
export function safeFolderName(name: string): string {
  const ascii = name.normalize('NFKD').replace(/[\u0300-\u036f]/g, ''); // é -> e
  let slug = ascii
    .toLowerCase()
    .replace(/[^a-z0-9_-]+/g, '-')
    .replace(/-{2,}/g, '-')
    .replace(/^[-_]+|[-_]+$/g, '')
    .slice(0, MAX_FOLDER_LENGTH)
    .replace(/[-_]+$/g, '');
  if (slug === '') slug = 'task';
  if (WINDOWS_RESERVED.test(slug)) slug = `${slug}-task`;
  return slug;
}

/** Whether a string is already a folder name safeFolderName could have produced. */
export function isSafeFolderName(folder: string): boolean {
  return folder.length > 0 && folder.length <= MAX_FOLDER_LENGTH + 4 && /^[a-z0-9][a-z0-9_-]*$/.test(folder) && !WINDOWS_RESERVED.test(folder);
}

/** The first of `base`, `base-2`, `base-3`, … that `taken` does not contain. */
export function uniqueFolderName(base: string, taken: ReadonlySet<string>): string {
  if (!taken.has(base)) return base;
  for (let i = 2; ; i++) {
    const candidate = `${base}-${i}`;
    if (!taken.has(candidate)) return candidate;
  }
}
