"""Duplicates in a photo archive: tiered pairs and groups (report.py, finder.py), what to keep
(plans), acting on a plan and undoing it, and the pairs a user said are not duplicates."""
