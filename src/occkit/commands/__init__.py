"""One module per ``occkit`` subcommand: each defines ``add_arguments(parser)`` and ``run(args)``."""
