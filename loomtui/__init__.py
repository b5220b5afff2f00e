"""loomtui: a terminal loom for exploring the continuations a language model could write."""

__version__ = "0.1.0"
