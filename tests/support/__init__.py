"""Helpers and doubles the tests share (imported by test files, never by the portal)."""
