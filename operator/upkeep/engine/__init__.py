"""Pure decisions without I/O: durations, schedules, the action catalog, semantic checks.

Imports only ``upkeep.model``.
"""
