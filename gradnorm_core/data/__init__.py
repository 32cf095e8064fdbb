"""Data sets read from local files (no download at run time)."""
