#!/bin/sh
# Installs the S3 tests' node packages (s3rver, aws4; pinned in
# package-lock.json) into tests/s3/node_modules, once.
set -e
cd "$(dirname "$0")"
[ -d node_modules/s3rver ] && [ -d node_modules/aws4 ] && exit 0
command -v npm >/dev/null 2>&1 || { echo "tests/s3/setup.sh: npm is missing (apt-get install nodejs npm)" >&2; exit 1; }
npm ci --no-audit --no-fund
