"""Finding candidates: recall's pipeline (the registered mechanisms run under a deadline), one
question's search and what it shares (its chats, its scale, its searches by meaning and by words,
the L2.5 cache's lookup), and L3's reads."""
