"""Evaluation: metrics, figures and (later) class activation maps."""
