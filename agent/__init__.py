"""vapi-agent: operate a Vapi voice-AI account through MCP."""

__version__ = "0.1.0"
