"""Execution environments: processes that run one function version, spoken to over the
Lambda Runtime API; their lifecycle, pools and launchers."""
