"""Hooks: an Airflow connection in, an authenticated API client out."""
