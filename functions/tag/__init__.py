"""The tag stage: main.py is its function."""
