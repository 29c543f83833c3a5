#!/usr/bin/env bash
# Sets up a development checkout: the Python venv with Chatroom and its dev tools at the
# versions of requirements/dev.lock, and, when Node.js is here, the web client's packages
# and build.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  echo "setup: Python 3.11 or newer is needed (found $("$PYTHON" --version 2>&1))" >&2
  exit 1
fi
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
# The exact, hash-checked versions of every runtime and dev dependency (scripts/lock.sh
# refreshes the lock), then Chatroom itself, editable, without resolving anything more.
.venv/bin/python -m pip install --quiet --require-hashes -r requirements/dev.lock
.venv/bin/python -m pip install --quiet --no-deps -e .

if command -v npm >/dev/null 2>&1; then
  (cd client && npm ci --no-audit --no-fund --loglevel=error && npm run build --silent)
else
  echo "setup: npm not found: the server runs without its web client; install Node.js 20+" \
       "and run 'cd client && npm ci && npm run build'" >&2
fi
