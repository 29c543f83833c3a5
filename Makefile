# The developer interface; CI runs the same targets.
.PHONY: run test setup services lint

run:       ## set up and start Chatroom on its embedded defaults
	scripts/run.sh

test:      ## set up and run every test (starts Redis and MariaDB if needed)
	scripts/test.sh

setup:     ## the venv and the web client build only
	scripts/setup.sh

services:  ## start the Redis and MariaDB the tests use, if not running
	scripts/services.sh

lint:
	.venv/bin/ruff check src tests bench && .venv/bin/ruff format --check src tests bench && .venv/bin/mypy
