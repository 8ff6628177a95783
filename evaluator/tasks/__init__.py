"""Tasks a design is trained and measured on. Each task generates all of its data from a seed
before any candidate code is imported, trains a fresh backbone, and returns its metrics."""
