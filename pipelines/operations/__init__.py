"""Quarterly operations: ingestion batches and their kept inputs, releases, reproduction, late exports."""
