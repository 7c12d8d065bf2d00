# Dockyard: `make up` installs and starts everything; `make test` runs the whole suite.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: up down status test unit e2e bench clean-state

up:
	@bash scripts/install.sh
	@bash scripts/up.sh

down:
	@if [ -x $(PY) ]; then $(PY) -m controller.daemons.supervisor stop; else echo "platform not installed"; fi

status:
	@$(PY) -m controller.daemons.supervisor status

# JOBS test processes, each running whole modules (every module starts platforms of its own; the
# ones that count failed requests under load run one after another: tests/conftest.py); the
# modules marked `alone` (engine restarts, outages bounded to a second) run afterwards, by
# themselves. JOBS=0: one process.
JOBS ?= 2
test:
	@bash scripts/install.sh >/dev/null
	@rc=0; \
	$(VENV)/bin/pytest -ra --durations=30 -n $(JOBS) --dist loadfile --no-loadscope-reorder -m "not alone" || rc=$$?; \
	$(VENV)/bin/pytest -ra --durations=10 -m alone || rc=$$((rc ? rc : $$?)); \
	exit $$rc

unit:
	$(VENV)/bin/pytest -ra -m "not e2e"

e2e:
	$(VENV)/bin/pytest -ra -m e2e

bench:
	$(PY) bench/deploy.py
	$(PY) bench/workflow.py
	$(PY) bench/router.py
	$(PY) bench/buildpack.py

NODES ?= 3
MANAGERS ?= 1
.PHONY: cluster cluster-down
cluster:   # N simulated nodes (Docker-in-Docker) in a swarm, MANAGERS of them managers; the running platform switches to it
	@bash scripts/cluster.sh up $(NODES) $(MANAGERS)

cluster-down:   # apps move back to this host, then the nodes go
	@bash scripts/cluster.sh down
