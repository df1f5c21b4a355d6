"""Alembic's entry point for the ledger. The connection comes from ``store.ledger.upgrade``."""

from __future__ import annotations

from alembic import context

from costaware.store.ledger import metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
