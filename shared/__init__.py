"""What every Mindspace function needs: config, database, blobs, models, observability, the stage adapter."""
