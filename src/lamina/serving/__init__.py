"""Serving the Invoke API from more than one OS process on one port."""
