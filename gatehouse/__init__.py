"""Gatehouse: shared infrastructure (`gatehouse.infra`), generated gRPC stubs and the CLI."""
