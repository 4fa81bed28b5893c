"""`python -m lookalike` runs the command-line interface."""

from lookalike.cli.app import main

main()
