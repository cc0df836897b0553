"""Model fitting: what a GGUF holds (header, facts) and what it needs to run."""
