"""Invoking functions: sync and async paths, concurrency limits, the durable event queue."""
