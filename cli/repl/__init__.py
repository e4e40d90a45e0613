"""The chat REPL: ``session`` (the loop over prompts), ``slash`` (its /commands), ``view`` (rendering, approvals)."""
