"""`python -m pie_client …`: the client verbs without the server installed."""

from pie_client.cli import main

main(prog_name="pie")
