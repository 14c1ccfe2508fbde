"""The audit trail: an append-only record of who did what to what, when and from where."""
