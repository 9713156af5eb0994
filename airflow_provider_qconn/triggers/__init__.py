"""Triggers: waits that run on the triggerer, not in a worker slot."""
