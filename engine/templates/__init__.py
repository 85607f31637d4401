"""Chat templates: the message type, Jinja and Go templates, the built-in formats."""
