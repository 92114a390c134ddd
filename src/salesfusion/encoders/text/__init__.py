"""Text encoders: tfidf, doc2vec, minilm, word_sequence, e5; each module registers its encoders
when the encoder registry asks for them (``components.ENCODERS``)."""
