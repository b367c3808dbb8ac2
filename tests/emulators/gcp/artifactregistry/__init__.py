"""Artifact Registry v1: repositories (the images themselves live elsewhere)."""
