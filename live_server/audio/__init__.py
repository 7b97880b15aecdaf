"""Audio utilities with no network I/O: conversions, streaming resampling, one segment's
assembly, and the server's voice activity detection."""
