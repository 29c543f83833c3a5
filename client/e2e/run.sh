#!/usr/bin/env bash
# Builds the client, starts `chatroom serve` on a free port with a throwaway data folder,
# waits for /healthz, runs the Playwright tests against it, and stops the server.
# Usage: bash client/e2e/run.sh [playwright args...]
set -euo pipefail

client="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
repo="$(cd "$client/.." && pwd)"
python="${E2E_PYTHON:-$repo/.venv/bin/python}"

cd "$client"
npm run build

port="$("$python" -c 'from chatroom.loopback_ports import free_port; print(free_port())')"
data_dir="$(mktemp -d)"
log="$data_dir/server.log"

cleanup() {
  if [[ -n "${server_pid:-}" ]] && kill -0 "$server_pid" 2>/dev/null; then
    kill "$server_pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$server_pid" 2>/dev/null || true
  fi
  rm -rf "$data_dir"
}
trap cleanup EXIT

# A message limit other than the client's fallback (4,000): the e2e shows the server's is used.
# Every spec file signs up its own people, all from 127.0.0.1: more than the default 10 an hour.
# The search story writes a page's worth of messages in a second or two: more than the
# default burst of 20 at 10 a second, which a person typing never reaches.
(cd "$repo" && CHATROOM_DATA_DIR="$data_dir" CHATROOM_MESSAGE_MAX_CHARS=3000 CHATROOM_REGISTRATIONS_PER_ADDRESS_PER_HOUR=100 CHATROOM_SEND_BURST=100 exec "$python" -m chatroom serve --host 127.0.0.1 --port "$port") \
  >"$log" 2>&1 &
server_pid=$!

url="http://127.0.0.1:$port"
for _ in $(seq 120); do
  if curl -fsS "$url/healthz" >/dev/null 2>&1; then break; fi
  if ! kill -0 "$server_pid" 2>/dev/null; then
    echo "chatroom serve exited early:" >&2
    cat "$log" >&2
    exit 1
  fi
  sleep 0.5
done
curl -fsS "$url/healthz" >/dev/null || { echo "no /healthz after 60 s" >&2; cat "$log" >&2; exit 1; }

mkdir -p e2e/screenshots
status=0
CHATROOM_E2E_URL="$url" npx playwright test "$@" || status=$?
if [[ $status -ne 0 ]]; then
  echo "--- server log (tail) ---" >&2
  tail -n 80 "$log" >&2
fi
exit $status
