"""Dialog flows: plain functions that turn one incoming event and the stored state into replies."""
