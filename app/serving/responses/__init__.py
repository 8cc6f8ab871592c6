"""The Responses API: a request's input as an OCR job (`input`), the response object rebuilt from the job's
record (`objects`), its stream events (`events`), and the endpoints (`endpoints`)."""
