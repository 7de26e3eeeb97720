"""Wake: reading documents into the store, chatting, looking facts up."""
