"""Retention decisions: whom to contact within a budget (``targeting``) and what a campaign did
against its random controls (``effect``). Plain functions on data frames; no Dagster."""
