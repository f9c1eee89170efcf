"""Running Tether in production: metrics, health, workers, retention and other operations."""
