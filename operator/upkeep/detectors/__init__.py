"""Detectors: cluster state turned into signals, as pure functions over object bodies.

``pods`` (CrashLoopBackOff, ImagePullBackOff, OOMKilled, Unschedulable, with the owner chain
through a lookup the caller passes in), ``deployments``, ``nodes`` and ``jobs``, each returning a
``sightings.Detection``: the engine's signals plus what tells one occurrence from the next.
"""
