"""The suggest stage: main.py is its function."""
