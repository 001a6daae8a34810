"""Chinese text in, tags out: tokeniser, risk classifier, urgent signals and redaction; knows nothing of chats."""
