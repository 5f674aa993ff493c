"""The storage engine: content-addressed, encrypted, deduplicated snapshots of any tree.

It knows nothing of Pydio Cells; see docs/FORMAT.md for the on-disk format.
"""
