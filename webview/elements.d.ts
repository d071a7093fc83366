// elements.js has only side effects (it registers the <vscode-…> custom elements).
export {};
