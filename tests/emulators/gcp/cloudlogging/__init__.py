"""Cloud Logging v2: the entries a Cloud Run execution's containers write, and entries:list."""
