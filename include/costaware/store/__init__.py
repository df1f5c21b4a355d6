"""Where state is kept: the ledger (SQL + Alembic migrations) and the probe store."""
