"""Personalization: content per campaign x segment x variant, guardrails and rendering; plain Python."""
