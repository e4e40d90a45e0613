"""Vapi's REST API face of the sandbox: endpoints, request validation, analytics, chat SSE, recordings, faults."""
