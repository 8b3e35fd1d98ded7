"""The event catalogue (catalogue.py), the CloudEvents wire format (wire.py) and the routes (routes.py)."""
