#!/usr/bin/env bash
# The whole suite: lint, engine and web tests, kernel replays, browser tests.
set -eu
cd "$(dirname "$0")/.."
PY=.venv/bin/python
mkdir -p artifacts
.venv/bin/ruff check netviz tests
status=0
# The load test runs here in a short form (make bench runs the long one):
# 30 clients against gunicorn on loopback, every request must succeed.
NETVIZ_LOAD=${NETVIZ_LOAD:-1} NETVIZ_LOAD_SECONDS=${NETVIZ_LOAD_SECONDS:-15} \
    .venv/bin/python -m pytest -p no:cacheprovider "$@" || status=$?

# The tests that use the database once more, against a throwaway PostgreSQL
# (production runs several app servers on one PostgreSQL: docs/deploy.md).
db_tests=$(grep -rl "django_db" tests --include='test_*.py' \
    | grep -v -e '^tests/web/' -e '^tests/browser/' -e '^tests/load/' | sort || true)
if [ -n "${NETVIZ_SKIP_POSTGRES:-}" ]; then
    echo "SKIP: the PostgreSQL pass (NETVIZ_SKIP_POSTGRES is set)"
elif pg_env=$(bash scripts/postgres.sh start); then
    eval "$pg_env"
    trap 'bash scripts/postgres.sh stop "$NETVIZ_PG_DIR"' EXIT
    echo "== PostgreSQL pass: tests/web $db_tests against $DATABASE_URL"
    # shellcheck disable=SC2086
    DATABASE_URL=$DATABASE_URL .venv/bin/python -m pytest -p no:cacheprovider tests/web $db_tests || status=$?
else
    echo "SKIP: the PostgreSQL pass: no throwaway PostgreSQL could be started (see the message above)"
fi
exit $status
