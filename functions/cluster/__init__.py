"""The cluster stage: main.py is its function."""
