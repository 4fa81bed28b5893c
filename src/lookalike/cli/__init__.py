"""The command-line interface: a thin adapter over the library."""
