#!/usr/bin/env bash
# The whole suite: lint, engine and web tests, kernel replays, browser tests.
set -eu
cd "$(dirname "$0")/.."
PY=.venv/bin/python
mkdir -p artifacts
.venv/bin/ruff check netviz tests
.venv/bin/python -m pytest -p no:cacheprovider "$@"
