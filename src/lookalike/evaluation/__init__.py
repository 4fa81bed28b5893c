"""Evaluation tools: benchmark sets and retrieval metrics."""
