"""pytest plugin of sipharness (registered as the ``sipharness`` entry point)."""
