"""Upkeep: a Kubernetes operator for production support.

Releases, change requests, incidents, problems and remediation playbooks as Kubernetes
resources of the API group ``upkeep.dev``, reconciled against declared state in git.
"""

__all__ = ["API_VERSION", "GROUP", "VERSION", "__version__"]

__version__ = "0.1.0"

GROUP = "upkeep.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
