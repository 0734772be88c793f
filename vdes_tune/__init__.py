"""vdes-tune: can a virtual DES replace the real one? Ingest, train, search and evaluate at scale."""

__version__ = "0.1.0"
