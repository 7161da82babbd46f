"""Persistence: the SQL database (SQLite embedded, PostgreSQL in a cluster) and blobs."""
