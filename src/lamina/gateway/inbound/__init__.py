"""Inbound dialects other than OpenAI's, translated to and from the lingua franca."""
