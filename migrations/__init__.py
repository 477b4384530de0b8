"""Alembic migrations of the Lovitura database (one revision per schema change)."""
