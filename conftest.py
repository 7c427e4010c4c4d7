"""Root pytest wiring: shared by the harness's own tests (tests/) and the conformance suite.

The conformance runner itself is the ``sipharness`` pytest plugin (an entry point, see
``sipharness.scenario.pytest_plugin``); this file only keeps ad-hoc runs from the repository
root tidy.
"""

collect_ignore_glob = [".venv/*", "node_modules/*", "allure-results/*", "allure-report/*"]
