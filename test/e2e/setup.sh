#!/usr/bin/env bash
# Installs what the tests need and nothing the extension ships with; each step is skipped when its
# result is already there, so `npm test` and `npm run test:e2e` can call it every time.
#   1. Debian packages: openssl and python3-torch (unit tests), chromium (the browser playwright drives)
#      and the -dev libraries that code-server's native modules build against.
#   2. node@24 + code-server into .e2e/cs (git-ignored): code-server needs Node 24, and npm must
#      itself run under Node 24 for code-server's postinstall to accept it.
#   3. test/e2e's own npm dependencies (playwright-core, mocha, @vscode/test-electron).
set -euo pipefail

# Run from `npm test`, this script inherits the outer npm's settings as npm_* variables (its user agent
# naming the Node it runs on, the project's .npmrc, …), and every npm started below would take them as
# its own: code-server's postinstall reads the Node version from npm_config_user_agent and would find
# the outer Node 20. So the npm commands here start as from a terminal, with the user's and the global
# .npmrc only.
while read -r var; do
  if [[ $var == npm_* ]]; then unset "$var"; fi
done < <(compgen -e)

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
CODE_SERVER_VERSION=4.139.1
NODE24_SPEC=node@24
# openssl: the download tests' throw-away certificate authority; python3-torch: the training job's tests.
APT_PACKAGES=(openssl python3-torch chromium libkrb5-dev libsecret-1-dev libxkbfile-dev libx11-dev pkg-config)

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

# 2. node@24 + code-server, cached in .e2e/cs. They are installed into .e2e/cs.partial and renamed
#    to .e2e/cs only once code-server runs, so an install cut short (Ctrl+C, a failed native build)
#    never passes for a finished one: the next run removes what it left and starts over.
CS="$ROOT/.e2e/cs"
STAGING="$ROOT/.e2e/cs.partial"
# The version line, not the first: code-server's first run on a machine prints "Wrote default config file" before it.
cs_version() { PATH="$1/node_modules/.bin:$PATH" "$1/node_modules/.bin/code-server" --version 2>/dev/null | grep -m1 -E '^[0-9]+\.[0-9]+\.[0-9]+ ' || true; }
if ((!only_deps)) && [[ "$(cs_version "$CS")" != "$CODE_SERVER_VERSION "* ]]; then
  log "installing $NODE24_SPEC and code-server@$CODE_SERVER_VERSION into .e2e/cs (about 3-5 minutes)"
  rm -rf "$STAGING"
  mkdir -p "$STAGING"
  # allowScripts: the three install scripts this needs (node@24 fetches its binary package, code-server
  # installs VS Code's modules, argon2 builds), approved so that npm 11 does not warn and later npm runs them.
  echo '{"name":"e2e-code-server","private":true,"allowScripts":{"node":true,"code-server":true,"argon2":true}}' > "$STAGING/package.json"
  (cd "$STAGING" && npm install --save-exact --no-audit --no-fund --loglevel=error "$NODE24_SPEC")
  (cd "$STAGING" && PATH="$STAGING/node_modules/.bin:$PATH" npm install --save-exact --no-audit --no-fund --loglevel=error "code-server@$CODE_SERVER_VERSION")
  got="$(cs_version "$STAGING")"
  if [[ "$got" != "$CODE_SERVER_VERSION "* ]]; then
    log "code-server@$CODE_SERVER_VERSION did not install (code-server --version: ${got:-nothing}); see the npm output above"
    exit 1
  fi
  rm -rf "$CS" # whatever an earlier, unfinished install left there
  mv "$STAGING" "$CS"
  log "code-server $got"
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
