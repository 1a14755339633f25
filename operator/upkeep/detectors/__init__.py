"""Turn cluster state into signals (CrashLoopBackOff, OOMKilled, ...). Built by the incident issue."""
