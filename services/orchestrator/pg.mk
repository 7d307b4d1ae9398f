# services/orchestrator/pg.mk: what the PostgreSQL conversation store
# (history_pg.c, --db postgresql://...) and its tests need from Debian:
# libpq to build and link (see leaves.mk), a real PostgreSQL server and
# HAProxy for tests/deploy/test_postgres.py (make test-deploy) and
# tests/integration/test_history_pg.py.
DEB_PACKAGES += libpq-dev postgresql haproxy

# tests/deploy/test_postgres.py and tests/integration/test_history_pg.py run
# the store's checks (test_orch_history) against a PostgreSQL they start.
test-deploy integration: $(BUILD)/tests/test_orch_history
