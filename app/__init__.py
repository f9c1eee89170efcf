"""Tether: the stateful half of the OpenAI API for any OpenAI-compatible model server."""
