"""The web dashboard at /dashboard (see endpoints.py)."""
