"""The FastAPI inference service (issue: service). Uses `model`'s public API only, never `training`."""
