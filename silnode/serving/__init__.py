"""Serving: model worker processes, the per-model queue and the OpenAI-compatible API."""
