"""Alembic migrations of the ledger. ``Ledger`` runs them on first use; see ``store/ledger.py``."""
