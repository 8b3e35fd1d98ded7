"""The ocr stage: main.py is its function."""
