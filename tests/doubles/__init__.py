"""Local doubles of external services that speak their real wire formats, errors included."""
