"""Graph passes, one per module; each rewrites one pattern and reports what it changed."""
