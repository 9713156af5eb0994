"""Extra links: buttons on a task instance that open what the task made at the provider."""
