"""The remind stage: main.py is its function."""
