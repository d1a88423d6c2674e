"""The audit service: consumes events from the Redis stream into SQL and serves the audit logs."""
