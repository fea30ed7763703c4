"""One live session: the conversation, how it ends, its recorder and transcript, its tools."""
