"""Orchestration: turn requests from the CLI into work on the lower layers."""
