"""Corpus and data preparation: records, audio I/O, features, the synthetic corpus, real-corpus loaders, validation."""
