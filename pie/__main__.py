"""`python -m pie` runs the `pie` command."""

from pie.cli import main

main()
