"""Alembic migrations of the journal's schema (`dpsched db upgrade`)."""
