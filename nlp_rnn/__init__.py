"""nlp-rnn: recurrent neural networks for text (translation and character language models)."""

__version__ = "0.1.0"
