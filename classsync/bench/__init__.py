"""Benchmarks: `classsync bench` runs the sandbox, the server on PostgreSQL and a load client."""
