"""The `lamina` command: the server and an HTTP client of its API."""
