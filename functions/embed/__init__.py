"""The embed stage: main.py is its function."""
