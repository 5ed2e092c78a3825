"""classsync: stores QuickBooks Online Classes received over gRPC and syncs them to QBO."""

__version__ = "0.1.0"
