"""Schema tests: migrations, Node adoption, schema.prisma parity, drift check, URLs."""
