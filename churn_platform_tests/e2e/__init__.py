"""The e2e tier (marker: e2e)."""
