"""Subcommands of the `capillary` CLI; see `capillary.cli`."""
