"""Evaluating one method: generation, scores, likelihood preferences."""
