"""The `cells-backup` command line: parsing, output and exit codes, no business logic."""
