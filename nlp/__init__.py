"""Chinese text in, tags out: tokeniser, risk classifier, urgent signals, redaction; no chats, no tables."""
