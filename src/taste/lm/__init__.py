"""TASLM, its baselines (S3-unit LM, cascade) and speech continuation (stage 03 taslm)."""
