# The developer interface; CI runs the same targets. `make help` lists them.
.PHONY: run test test-fast setup services lint lock help chaos-short chaos

run:       ## set up and start Chatroom on its embedded defaults
	scripts/run.sh

test:      ## set up and run every test, with the coverage floor (starts Redis and MariaDB if needed)
	scripts/test.sh

test-fast: ## the fast loop, seconds: the tests that need no Redis, SQL nor process (pytest -m fast)
	@[ -x .venv/bin/pytest ] || scripts/setup.sh
	.venv/bin/pytest -m fast -q

setup:     ## the venv (from requirements/dev.lock) and the web client build only
	scripts/setup.sh

services:  ## start the Redis and MariaDB the tests use, if not running
	scripts/services.sh

lint:      ## ruff and mypy (strict), as `make test` runs them
	.venv/bin/ruff check src tests bench && .venv/bin/ruff format --check src tests bench && .venv/bin/mypy

lock:      ## re-resolve requirements/dev.lock from pyproject.toml (then setup, test, commit)
	scripts/lock.sh

help:      ## this list
	@grep -E '^[a-z-]+: *##' $(MAKEFILE_LIST) | sed -E 's/^([a-z-]+): *## */  make \1\t/' | expand -t 18

# The chaos campaign (docs/reliability.md). `chaos-short` runs in `make test` (and CI);
# both exit 1 when the checker finds any violation.
CHAOS_SHORT_FAULTS = archiver_kill,archiver_crash_loop,node_kill,node_pause,sql_pause,redis_kill,redis_power_loss,redis_maxmemory,burst,poison,poison_huge

chaos-short: ## a seeded 3-minute campaign (own Redis + MariaDB); last line: the JSON counts
	.venv/bin/python -m bench.chaos --seed 7 --duration 90 --drain-timeout 30 \
		--faults $(CHAOS_SHORT_FAULTS) --report chaos-short.json \
		$(if $(ACK_DURABILITY),--ack-durability $(ACK_DURABILITY))

chaos:     ## the long campaign: 30 minutes, every fault kind, long fault durations
	.venv/bin/python -m bench.chaos --seed $${SEED:-1} --duration $${DURATION:-1800} --long \
		--engine $${ENGINE:-mariadb} --report chaos-long.json \
		$(if $(ACK_DURABILITY),--ack-durability $(ACK_DURABILITY))
