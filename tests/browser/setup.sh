#!/bin/sh
# Installs the browser tests' node package (playwright-core, pinned in
# package-lock.json) into tests/browser/node_modules, once.  It drives
# the system's Chromium (/usr/bin/chromium); no browser is downloaded.
set -e
cd "$(dirname "$0")"
[ -d node_modules/playwright-core ] && exit 0
command -v npm >/dev/null 2>&1 || { echo "tests/browser/setup.sh: npm is missing (apt-get install nodejs npm)" >&2; exit 1; }
PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund
