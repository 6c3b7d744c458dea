"""CRM destinations of the sync engine: one module each, all with the interface in base.py."""
