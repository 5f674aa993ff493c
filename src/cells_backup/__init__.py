"""cells-backup: back up and recover a whole Pydio Cells installation."""

__version__ = "0.1.0"
