"""firegrid: the composition root (settings, CLI, process wiring, HTTP API, demo)."""
