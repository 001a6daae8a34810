"""Thin adapters that carry updates between a Telegram framework and the dialog engine."""
