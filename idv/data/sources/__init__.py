"""Importers of public / owned corpora into the manifest format (see idv.data.manifest)."""
