"""Telemetry: function logs (CloudWatch Logs model), and later metrics, traces, usage."""
