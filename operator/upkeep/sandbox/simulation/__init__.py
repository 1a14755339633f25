"""The sandbox's simulated cluster: nodes, a scheduler, kubelets and the controllers of a control plane.

They run as asyncio tasks in the sandbox's process and act through the API server's semantics
(``apiserver.ApiServer``) directly, as the components of a real cluster act through its API:
every change they make is an ordinary write that watches, kubectl and operators see.
"""
