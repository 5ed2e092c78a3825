"""qbo layer."""
