// A tiny element builder for the panel: h('div', { class: 'x' }, child, 'text'). Text is always
// set as text (never parsed as HTML), so example inputs can hold anything.

type Child = Node | string | null | undefined | false;
type Props = Record<string, string | number | boolean | undefined | null>;

/** Creates an element with attributes (false/null/undefined omitted, true as "") and children. */
export function h<K extends keyof HTMLElementTagNameMap>(tag: K, props?: Props, ...children: Child[]): HTMLElementTagNameMap[K];
export function h(tag: string, props?: Props, ...children: Child[]): HTMLElement;
export function h(tag: string, props: Props = {}, ...children: Child[]): HTMLElement {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (v === undefined || v === null || v === false) continue;
    el.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    el.append(typeof c === 'string' ? document.createTextNode(c) : c);
  }
  return el;
}

/** A value-bearing element (@vscode-elements' fields expose `value` like native inputs). */
export interface ValueElement extends HTMLElement {
  value: string;
}

/** A checkbox element (`checked`). */
export interface CheckElement extends HTMLElement {
  checked: boolean;
}
