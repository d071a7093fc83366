// Types of the lint rule in importCycles.mjs, for the tests that load it.
import type { ESLint, Rule } from 'eslint';

export declare const noImportCycle: Rule.RuleModule;
declare const plugin: ESLint.Plugin;
export default plugin;
