"""Generated gRPC stubs; written only by `make protos`."""
