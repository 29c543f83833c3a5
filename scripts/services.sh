#!/usr/bin/env bash
# Starts the Redis and MariaDB that the test suite needs, if they are not running yet.
set -euo pipefail

redis_up() { redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; }
mariadb_up() { mariadb -h 127.0.0.1 -P 3306 -u root -e 'select 1' >/dev/null 2>&1; }

wait_for() {
  local name=$1 check=$2
  for _ in $(seq 1 100); do
    if $check; then return 0; fi
    sleep 0.2
  done
  echo "services: $name did not come up on 127.0.0.1" >&2
  return 1
}

if ! redis_up; then
  echo "services: starting Redis on 127.0.0.1:6379"
  mkdir -p /var/lib/redis /var/log/redis
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log
  wait_for Redis redis_up
fi
if ! mariadb_up; then
  echo "services: starting MariaDB on 127.0.0.1:3306"
  start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd
  wait_for MariaDB mariadb_up
fi
# nginx is not a service here: tests/test_nginx.py starts its own on a free port, in
# front of two app nodes, with deploy/nginx's configuration. It only needs the binary.
if ! command -v nginx >/dev/null 2>&1 && [ ! -x /usr/sbin/nginx ]; then
  echo "services: installing Debian's nginx-light for tests/test_nginx.py"
  apt-get update -qq && apt-get install -y -qq nginx-light >/dev/null
fi
