"""`python -m local.cli …`, as the local stack starts its broker."""
from local.cli import main

main()
