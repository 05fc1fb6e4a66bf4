"""The measures layer: the one place between request records and every number an output shows.

Work in progress: statistics (`stats`) live here; the columnar tables, the bootstrap engine, the metric registry
and the rule language follow.
"""
