"""The auth service: users, passwords, sessions, 2FA, projects and roles, API tokens (gRPC)."""
