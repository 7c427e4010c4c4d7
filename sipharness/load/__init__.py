"""Locust integration: SIP users, per-phase statistics, load shapes and saturation reports."""
