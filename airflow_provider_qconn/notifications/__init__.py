"""Notifiers: DAG and task callbacks that send a message."""
