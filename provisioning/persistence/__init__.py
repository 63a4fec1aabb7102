"""SQL persistence: SQLite by default, PostgreSQL for scale-out."""
