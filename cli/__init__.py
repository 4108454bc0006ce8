"""The `segmenter` command: one entry point whose subcommands live in each package."""
