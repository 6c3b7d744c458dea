"""Plain-Python predictive layer: send-time optimization and propensity."""
