// A tiny element builder for the panel: h('div', { class: 'x' }, child, 'text'). Text is always
// set as text (never parsed as HTML), so example inputs can hold anything. Also the little DOM
// helpers the panel's parts share: focusing a <vscode-…> element once drawn, and a dropdown that
// opens on the side of its field where its list fits.

import { dropdownHeight, opensAbove } from './format';

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

/** Focuses a <vscode-…> element once it has drawn itself. */
export function refocus(el: HTMLElement | null): void {
  const lit = el as (HTMLElement & { updateComplete?: Promise<unknown> }) | null;
  if (lit?.updateComplete) void lit.updateComplete.then(() => lit.focus());
  else lit?.focus();
}

/**
 * Makes a <vscode-single-select> open its list above the field when the list would not fit below it
 * (a row near the panel's bottom edge would otherwise open it out of sight): the side is chosen just
 * before the list opens, by mouse or by keyboard.
 */
export function keepDropdownInView(select: HTMLElement): void {
  const place = () => {
    const r = select.getBoundingClientRect();
    const list = dropdownHeight(select.querySelectorAll('vscode-option').length);
    select.setAttribute('position', opensAbove(r.top, r.bottom, document.documentElement.clientHeight, list) ? 'above' : 'below');
  };
  select.addEventListener('pointerdown', place, { capture: true });
  select.addEventListener('keydown', place, { capture: true });
}
