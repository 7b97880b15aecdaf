"""A socket's I/O, whatever its protocol: one reader, one writer, the bounded queue between
them, and the codec interface that turns events into frames. The only place that writes to a
socket."""
