"""The `dpsched` command line."""
