"""What a function needs at run time: config, database, lifecycle, blobs, models, the stage adapter."""
