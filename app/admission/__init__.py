"""Admission control: the guard of the routes that create work (`guard`), and its counters, in memory or in
Redis (`store`, `redis_store`)."""
