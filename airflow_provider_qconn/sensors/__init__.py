"""Sensors: wait for something to happen at a provider."""
