"""The Lambda API (2015-03-31): functions, versions, aliases, concurrency, Invoke."""
