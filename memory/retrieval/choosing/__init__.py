"""Choosing among the candidates (pure): the gap test, the fusion and the scores, the turns beside
the best or the next nearest by meaning, the newest first, and a long turn cut to its excerpts."""
