"""Storage and queries of the audit events (the domain layer of the audit service)."""
