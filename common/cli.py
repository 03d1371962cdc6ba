"""``python -m common.train``'s command, under the name it had before training became a package:
the code is in ``common/train/__main__.py``; ``common.cli.main``, ``common.cli.train`` and the
rest keep working from here."""
from common.train.__main__ import (
    DEFAULTS,
    LIST_FLAGS,
    MILESTONE_FRACTIONS,
    PAPER_BATCH,
    PAPER_LR,
    PROG,
    RECIPE_FLAGS,
    SETTINGS,
    SOURCES,
    CommandError,
    build_parser,
    build_recipe,
    main,
    parse_data,
    setting_name,
    settings_of,
    train,
)

__all__ = ["DEFAULTS", "LIST_FLAGS", "MILESTONE_FRACTIONS", "PAPER_BATCH", "PAPER_LR", "PROG",
           "RECIPE_FLAGS", "SETTINGS", "SOURCES", "CommandError", "build_parser", "build_recipe",
           "main", "parse_data", "setting_name", "settings_of", "train"]
