"""Sub-commands of the ``sipharness`` command line, one module each."""
