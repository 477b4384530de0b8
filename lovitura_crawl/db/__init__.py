"""The relational store: SQLAlchemy models (``models``) and engine set-up (``engine``)."""
