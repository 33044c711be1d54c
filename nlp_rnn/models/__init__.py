"""Models: torch only. They know nothing of files, tokenizers or terminals."""
from .classifier import ClassifierConfig, TextClassifier
from .lm import CharLM, LMConfig
from .seq2seq import Seq2Seq, Seq2SeqConfig

__all__ = ["CharLM", "LMConfig", "Seq2Seq", "Seq2SeqConfig", "TextClassifier", "ClassifierConfig"]
