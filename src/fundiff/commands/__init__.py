"""The CLI subcommands that live outside cli.py, one module per part of the study."""
