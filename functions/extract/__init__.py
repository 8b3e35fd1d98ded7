"""The extract stage: main.py is its function."""
