#!/bin/sh
# Fails if the protocol core's object files reference anything that does I/O,
# reads a clock, starts a thread or allocates. The core is sans-I/O by design
# (docs/ARCHITECTURE.md); this keeps it so. Sanitizer runtime symbols are ignored.
set -eu
lib="$1"
objs=$(ar t "$lib" | grep -E '^(error|utf8|topic|codec_encode|codec_decode|decoder|engine)\.c\.o$' || true)
[ -n "$objs" ] || { echo "no core objects found in $lib"; exit 1; }
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
cd "$tmp" && ar x "$lib" $objs
forbidden='^(malloc|calloc|realloc|free|strdup|socket|connect|send|sendto|sendmsg|recv|recvfrom|recvmsg|read|write|writev|readv|poll|select|epoll_.*|clock_gettime|gettimeofday|time|pthread_.*|thrd_.*|fopen|printf|fprintf|puts|abort|exit)$'
bad=$(nm -u $objs | awk '{print $NF}' | grep -vE '^__(asan|ubsan|sanitizer|tsan)' | grep -E "$forbidden" || true)
if [ -n "$bad" ]; then
  echo "core references forbidden symbols:"; echo "$bad"; exit 1
fi
echo "core is sans-I/O: $(echo $objs | wc -w) objects, no forbidden symbols"
