"""The local runtime: the stack that runs every function on one machine, its broker, and the CLI."""
