"""The notify stage: main.py is its function, fcm.py its Firebase Cloud Messaging client."""
