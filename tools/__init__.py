"""Operator commands run from a checkout (`./dev backfill`); never deployed."""
