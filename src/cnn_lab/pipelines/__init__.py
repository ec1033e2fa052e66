"""One folder per study; each exposes ``create_pipeline``."""
