"""Command-line tools (train, validate, benchmark, flops); importable as tools.<name> for tests."""
