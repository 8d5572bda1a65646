"""ml_collections configs: ``default.get_default_configs`` plus one file per (SDE, data set)."""
