"""Operators: template fields, validation, one hook call, a JSON-serialisable dict out."""
