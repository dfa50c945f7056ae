"""Reporting: MLflow tracking, plots, the summary and comparison tables, saved-layout statistics,
and re-pricing saved policies under a changed hardware model."""
