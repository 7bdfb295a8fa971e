"""The call engine: SIP endpoints (registrar, authentication), and, as they land, calls, legs and bridges."""
