"""The API function (HTTP): uploads, files and their progress, search, health and metrics."""
