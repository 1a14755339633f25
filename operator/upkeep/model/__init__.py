"""The resource model: CRD schemas, typed views, conditions and lifecycle transitions.

The bottom layer: it imports nothing else of Upkeep.
"""
