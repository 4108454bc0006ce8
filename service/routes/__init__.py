"""One resource per module: segment, models, health, metrics, and the web page."""
