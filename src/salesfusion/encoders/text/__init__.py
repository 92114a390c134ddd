"""Text encoders: tfidf, doc2vec, minilm, word_sequence, e5."""

from salesfusion.encoders.text import doc2vec, e5, minilm, tfidf  # noqa: F401
