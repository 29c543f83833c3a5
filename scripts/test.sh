#!/usr/bin/env bash
# The whole test suite: lint, types, the Python tests on both backends (embedded Valkey +
# SQLite, and the machine's Redis + MariaDB), the short chaos campaign, and the web
# client's lint, types, unit and browser tests against a real `chatroom serve`.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh
scripts/services.sh

echo "== ruff"
.venv/bin/ruff check src tests bench
.venv/bin/ruff format --check src tests bench
echo "== mypy"
.venv/bin/mypy
# PYTEST_WORKERS=N runs the tests on N pytest-xdist workers, each with a Redis database,
# a MariaDB database and an embedded Valkey of its own (tests/conftest.py); 0 runs them
# in this one process. 2 by default: the tests wait on processes and sockets more than
# they compute, and two workers take 7 minutes on a quiet 2-core machine against 19.
workers=${PYTEST_WORKERS:-2}
echo "== pytest (backends: ${CHATROOM_TEST_BACKENDS:-embedded,mariadb}; workers: $workers)"
# With the coverage of src/chatroom (the tests' own processes, where the in-process app
# nodes run; pytest-cov combines the workers'); under [tool.coverage.report] fail_under
# the run fails, and `.venv/bin/coverage report` then shows it by file.
.venv/bin/pytest -n "$workers" --cov --cov-report=

echo "== chaos campaign, short and seeded (docs/reliability.md): exits 1 on any violation"
# Its own Redis and MariaDB on free loopback ports; the last line is the JSON counts.
# fsync acks: under write acks a power loss can still hide one archived message from a
# node now and then (docs/reliability.md, "Archived, then lost"), which would make CI flaky.
make --no-print-directory chaos-short ACK_DURABILITY=fsync

if command -v npm >/dev/null 2>&1; then
  if [ ! -x /usr/bin/chromium ]; then
    echo "== installing Debian's chromium for the browser tests"
    apt-get update -qq && apt-get install -y -qq chromium >/dev/null
  fi
  echo "== client: lint, types, unit tests, browser tests"
  (cd client && npm run --silent lint && npm run --silent typecheck \
    && npm run --silent test:unit && E2E_PYTHON="$PWD/../.venv/bin/python" npm run --silent test:e2e)
fi
