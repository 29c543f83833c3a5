#!/usr/bin/env bash
# Sets up and starts Chatroom on its embedded defaults (Valkey + SQLite in ./chatroom-data).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec .venv/bin/chatroom serve "$@"
