"""Data-driven corpora any ingestion implementation must pass: hostile files and planted rows."""
