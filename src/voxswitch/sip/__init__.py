"""The SIP stack: a sans-I/O core (messages, transactions, dialogs, digest) and a thin asyncio shell."""
