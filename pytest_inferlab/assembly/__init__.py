"""Building engines for a run: the factory that loads, quantizes, drafts and serves models (one per spec),
caches them for the session and closes them. Above engines and optimizations, which it composes."""
