"""The sandbox: an embedded Kubernetes-compatible API server (aiohttp) for demos and tests.

It speaks the real Kubernetes HTTP API, so kubectl, Kopf and the official Python client
work against it unchanged. It depends on nothing else of Upkeep, and only the CLI imports it.
"""
