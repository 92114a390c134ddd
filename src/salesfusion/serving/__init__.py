"""The forecast service: API, dashboard, model store."""
