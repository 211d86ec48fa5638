"""Fixtures that build small question trees on disk (real files, no mocks)."""
