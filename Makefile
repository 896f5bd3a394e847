# Herald: `make run` for the demo, `make test` for the whole suite.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
HERALD_PORT ?= 8000
export HERALD_PORT

.PHONY: install run run-prod test lint typecheck pytest bench browser clean

install: $(INSTALLED)

$(INSTALLED): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $(INSTALLED)

# The embedded default: SQLite, django-q2's ORM broker and the built-in simulator.
# Short links go out on this server itself, so the demo's links can be followed here.
run: export HERALD_LINK_BASE ?= http://127.0.0.1:$(HERALD_PORT)/
run: install
	DEBUG=True $(BIN)/python manage.py migrate --noinput
	DEBUG=True $(BIN)/python manage.py load_demo
	@echo
	@echo "Herald: http://127.0.0.1:$(HERALD_PORT)/  (admin at /admin/, API docs at /api/v1/docs, health at /healthz)"
	@echo "Web and worker (with the built-in simulator) start now; Ctrl-C stops them all."
	@echo
	DEBUG=True PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/honcho start -f Procfile

# Production settings on this machine: PostgreSQL (the database is created if missing),
# gunicorn and two django-q2 clusters. Plain HTTP on 127.0.0.1, so no HTTPS redirect; keys
# you did not set are generated once (deploy/prod_env.py). README.md, "Production".
PROD_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/herald
run-prod: install
	eval "$$($(BIN)/python deploy/prod_env.py)" && \
	export DEBUG=False DATABASE_URL="$${DATABASE_URL:-$(PROD_DATABASE_URL)}" \
	  SECURE_SSL_REDIRECT="$${SECURE_SSL_REDIRECT:-False}" PATH="$(CURDIR)/$(BIN):$$PATH" && \
	$(BIN)/python deploy/createdb.py && \
	$(BIN)/python manage.py migrate --noinput && \
	$(BIN)/python manage.py collectstatic --noinput --verbosity 0 && \
	echo "Herald (production settings): http://127.0.0.1:$(HERALD_PORT)/ - Ctrl-C stops all" && \
	exec $(BIN)/honcho start -f Procfile.prod

test: install lint typecheck pytest

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install
	$(BIN)/mypy .

pytest: install
	$(BIN)/pytest

# Debian's Chromium for the browser tests (root, or sudo); skipped tests say when it is missing.
browser:
	@command -v chromium >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq chromium; \
	  else sudo apt-get update -qq && sudo apt-get install -y -qq chromium; fi; }

bench: install
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache staticfiles
