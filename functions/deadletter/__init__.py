"""The deadletter stage: main.py is its function."""
