"""Adapters: LoRAs trained offline per feedback (C3PO) and, next, per user."""
