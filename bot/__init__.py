"""Everything said in a chat: the dialog engine, questionnaires, transports and the Bot API simulator."""
