"""The audit log: every control-plane call, who made it, and whether it was allowed.

AuditEvent     one call (model.py: what is kept, and what never is)
AuditLog       the durable, append-only store, written off the request path
AuditRecorder  the router's hook that turns a call into an event
AuditEndpoint  GET /_lamina/audit, read by `lamina audit`
"""

from lamina.audit.endpoint import AuditEndpoint
from lamina.audit.model import AuditEvent
from lamina.audit.recorder import AuditRecorder
from lamina.audit.store import AuditLog, AuditQuery

__all__ = ["AuditEndpoint", "AuditEvent", "AuditLog", "AuditQuery", "AuditRecorder"]
