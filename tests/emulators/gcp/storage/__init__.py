"""Cloud Storage JSON API: buckets and objects (for code bundles)."""
