"""Chinese text in, tags out: tokeniser, risk classifier, urgent signals, redaction; knows nothing of chats."""
