"""Data quality: the contract (``contract.yaml``) and the Great Expectations suites built from it."""
