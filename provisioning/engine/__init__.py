"""The durable provisioning workflow (DBOS), its launch and its one-engine-per-database lock."""
