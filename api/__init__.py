"""The HTTP API and the dashboard page, thin over aixaudit's store: `uvicorn api.main:app`."""
