"""Measurements shared by every stage that judges speech: WER, bootstrap statistics, durations, prosody, quality,
speaker similarity and the blind recogniser. A leaf above `data`: it imports only config, pin and data."""
