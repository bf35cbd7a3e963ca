"""Fuzzing the decoder and the worker-action parser (issue 13, item 7)."""
