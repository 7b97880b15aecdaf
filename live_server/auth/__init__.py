"""Who may connect: credentials (JWTs and API keys, only hashes stored, compared in constant
time), accounts for the page, and failed logins counted."""
