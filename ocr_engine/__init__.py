"""Document OCR with DeepSeek-OCR models: documents in, Markdown out. Knows nothing of HTTP or queues."""
