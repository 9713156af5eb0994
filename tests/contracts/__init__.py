"""Contract tests: the sandbox against the published OpenAPI descriptions of Graph and Twilio."""
