"""Stage functions: each `run(cfg, workspace)` writes one folder atomically with a manifest."""
