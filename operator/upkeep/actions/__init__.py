"""Remediation actions, each with a dry run, an idempotency key and a verification. Built by the playbook issue."""
