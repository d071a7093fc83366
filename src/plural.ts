// Counts in words, shared by the host's messages and the panel's page. Pure.

/** "1 example", "2 examples" (regular English plurals only). */
export function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}
