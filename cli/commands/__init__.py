"""Command bodies and renderers: each module turns options into one library call and its output.

A body is an async function of a ``CommandContext`` returning an ``Outcome``; a renderer prints it
for people (the ``--json`` envelope is the runner's job). Workflow tools are composed into the chat
agent here (``chat``, ``ask``), so ``agent`` never imports ``workflows``.
"""
