"""The transcribe stage: main.py is its function."""
