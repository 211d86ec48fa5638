"""Shared test fixtures. Server fixtures live in tests/support/ and are loaded as plugins."""

pytest_plugins = [
    "tests.support.hub",
    "tests.support.s3",
    "tests.support.trees",
    "tests.support.reliability",
]
