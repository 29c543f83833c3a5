"""The SQL side: tables, the engine, the archive's batch upsert and history pages."""
