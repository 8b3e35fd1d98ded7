"""The backup stage: main.py is its function."""
