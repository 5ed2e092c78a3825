"""Monitoring: Prometheus metrics, health checks and the HTTP endpoints that serve them."""
