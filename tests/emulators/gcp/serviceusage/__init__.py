"""Service Usage v1: which APIs a project has enabled."""
