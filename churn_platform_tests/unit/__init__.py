"""The unit tier (marker: unit)."""
