"""Data-only package: the seed catalog (models.json), installed as silnode.seedcatalog; see README.md."""
