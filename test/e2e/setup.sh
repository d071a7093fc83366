#!/usr/bin/env bash
# Installs what the end-to-end tests need and nothing the extension ships with; each step is
# skipped when its result is already there, so `npm run test:e2e` can call it every time.
#   1. Debian packages: chromium (the browser playwright drives) and the -dev libraries that
#      code-server's native modules build against.
#   2. node@24 + code-server into .e2e/cs (git-ignored): code-server needs Node 24, and npm must
#      itself run under Node 24 for code-server's postinstall to accept it.
#   3. test/e2e's own npm dependencies (playwright-core, mocha, @vscode/test-electron).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
CODE_SERVER_VERSION=4.139.1
NODE24_SPEC=node@24
APT_PACKAGES=(chromium libkrb5-dev libsecret-1-dev libxkbfile-dev libx11-dev pkg-config)

log() { printf '[e2e-setup] %s\n' "$*"; }
t0=$SECONDS
# `setup.sh deps`: only step 3 (enough for `npm run test:vscode`, which needs no code-server).
only_deps=0
[[ "${1:-}" == deps ]] && only_deps=1

# 1. apt packages, only the missing ones.
missing=()
((only_deps)) && APT_PACKAGES=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  if [[ $(id -u) -ne 0 ]]; then
    log "missing Debian packages: ${missing[*]}"
    log "run as root: apt-get update && apt-get install -y ${missing[*]}"
    exit 1
  fi
  log "apt-get install ${missing[*]}"
  apt-get update -o DPkg::Lock::Timeout=900 -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -o DPkg::Lock::Timeout=900 "${missing[@]}" >/dev/null
fi

# 2. node@24 + code-server, cached in .e2e/cs.
CS="$ROOT/.e2e/cs"
if ((!only_deps)) && [[ "$("$CS/node_modules/.bin/code-server" --version 2>/dev/null | head -1)" != "$CODE_SERVER_VERSION "* ]]; then
  log "installing $NODE24_SPEC and code-server@$CODE_SERVER_VERSION into .e2e/cs (about 2-3 minutes)"
  mkdir -p "$CS"
  cd "$CS"
  [[ -f package.json ]] || echo '{"name":"e2e-code-server","private":true}' > package.json
  npm install --save-exact --no-audit --no-fund --loglevel=error "$NODE24_SPEC"
  PATH="$CS/node_modules/.bin:$PATH" npm install --save-exact --no-audit --no-fund --loglevel=error "code-server@$CODE_SERVER_VERSION"
  PATH="$CS/node_modules/.bin:$PATH" code-server --version | head -1
  cd "$ROOT"
fi

# 3. test/e2e's own dependencies, reinstalled when its lockfile changes.
E2E="$ROOT/test/e2e"
stamp="$E2E/node_modules/.lock-hash"
want="$(sha256sum "$E2E/package-lock.json" | cut -d' ' -f1)"
if [[ "$(cat "$stamp" 2>/dev/null)" != "$want" ]]; then
  log "npm ci in test/e2e"
  (cd "$E2E" && npm ci --no-audit --no-fund --loglevel=error)
  echo "$want" > "$stamp"
fi

log "ready in $((SECONDS - t0)) s"
