"""Accounts: registration, passwords, login sessions, throttling and API tokens."""
