"""Application layer: CLI commands, controllers and state; no widgets (those live in widgets/)."""
