"""Scenario files: loading, validation, matrix expansion and the plans both runners execute."""
