"""Webhook notification sinks. Built by the incident issue."""
