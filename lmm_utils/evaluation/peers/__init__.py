"""Peer systems run outside the project's environment (each in its own venv) for reference lines."""
