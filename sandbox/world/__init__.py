"""The simulated world: a seeded Vapi workspace (assistants, calls, conversations, recordings, campaigns)
and its rules. Imports nothing from the faces (``sandbox.rest``, ``sandbox.truto``) or ``sandbox.core``.
"""
