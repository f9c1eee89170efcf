"""Thin tasks: they take ids and call app services."""
