"""Remediation actions, each with a dry run, an idempotency key and a verification (``base`` is the interface).

``registry.ACTIONS`` maps every ``engine.catalog`` name to its action; docs/actions.md says what each does.
"""
