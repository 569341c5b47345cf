# netviz — make run: set up and serve with demo data; make test: set up and run every test.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test bench setup setup-test venv system system-test migrate demo lint clean

# The web server and the two job workers (Procfile): the web process and the
# default worker run without capabilities, only the kernel worker keeps
# CAP_NET_ADMIN for kernel checks and live reads.
run: setup migrate demo
	@echo "netviz is serving on http://$(HOST):$(PORT)/  (Ctrl-C stops it)"
	HOST=$(HOST) $(VENV)/bin/honcho start -f Procfile -p $(PORT)

test: setup-test migrate
	bash scripts/test.sh

# Parse/import/trace/page/memory figures for 1k, 10k and 110k generated rules,
# then the load test: gunicorn with 30 clients for 20 s (requests/s printed).
bench: setup migrate
	$(PY) manage.py bench
	$(PY) manage.py bench --fleet
	NETVIZ_LOAD=1 $(PY) -m pytest -p no:cacheprovider -q -s -m load tests/load

setup: system venv

setup-test: system-test venv

venv: $(VENV)/.installed

$(VENV)/.installed: requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

# Debian packages: what the app needs to serve (graphviz renders the SVGs;
# iptables/ipset/nftables/iproute2 are the kernel tools the checks use) and,
# for tests, chromium for the browser tests.
system:
	bash scripts/system-packages.sh iptables ipset nftables iproute2 graphviz util-linux

system-test:
	bash scripts/system-packages.sh iptables ipset nftables iproute2 graphviz util-linux chromium postgresql

migrate: venv
	$(PY) manage.py migrate --noinput -v 0

demo: venv
	$(PY) manage.py load_demo
	$(PY) manage.py load_lessons

lint: venv
	$(VENV)/bin/ruff check netviz tests
	$(VENV)/bin/mypy netviz/engine

clean:
	rm -rf $(VENV) var artifacts .pytest_cache
