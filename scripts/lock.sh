#!/usr/bin/env bash
# Refreshes requirements/dev.lock: every runtime and dev dependency of pyproject.toml,
# resolved for Python 3.11 to exact versions with the sha256 of every file PyPI has for
# them (any platform), so that scripts/setup.sh installs the same bytes everywhere.
# Run it after changing the dependencies in pyproject.toml (or to take newer releases:
# it resolves afresh), then run scripts/setup.sh and the tests, and commit the lock.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
  echo "lock: resolve with Python 3.11, the oldest Chatroom supports" \
       "(found $("$PYTHON" --version 2>&1)); set PYTHON=" >&2
  exit 1
fi
tools=$(mktemp -d)
trap 'rm -rf "$tools"' EXIT
# pip-tools in a venv of its own: it is not a dependency of Chatroom. PyPI only, whatever
# this machine's pip configuration adds: the lock must install on a fresh clone.
export PIP_CONFIG_FILE=/dev/null PIP_INDEX_URL=https://pypi.org/simple
unset PIP_FIND_LINKS PIP_EXTRA_INDEX_URL PIP_CONSTRAINT
export CUSTOM_COMPILE_COMMAND=scripts/lock.sh  # what the lock's header says to run
"$PYTHON" -m venv "$tools"
"$tools/bin/python" -m pip install --quiet --upgrade pip pip-tools
"$tools/bin/pip-compile" --quiet --generate-hashes --extra dev --strip-extras \
  --no-emit-index-url --index-url https://pypi.org/simple \
  --output-file requirements/dev.lock pyproject.toml
echo "lock: requirements/dev.lock written; now scripts/setup.sh, the tests, and commit it"
