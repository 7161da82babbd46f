"""AWS-compatible services: plain async operations keyed by operation name."""
