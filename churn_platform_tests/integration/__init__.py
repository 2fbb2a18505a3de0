"""The integration tier (marker: integration)."""
