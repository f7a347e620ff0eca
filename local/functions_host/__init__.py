"""A local Azure Functions host for function_app.py (Core Tools cannot be installed here)."""
