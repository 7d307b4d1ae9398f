#!/bin/sh
# tools/fetch_model.sh URL FILE [SHA256] - `make models`: downloads URL to
# FILE with a progress bar, resumable and checksum-verified.
#
#   - The bytes go to FILE.part; an interrupted download (Ctrl-C, lost
#     network) keeps it, and the next run resumes it (curl -C -).
#   - FILE appears only once FILE.part has the expected sha256; a mismatch
#     removes FILE.part (a resume cannot repair it) and fails.
#   - The expected sha256 is, first found: the SHA256 argument (the
#     Makefile's MODEL_SHA256 pin); URL.sha256 when the server publishes
#     one; the X-Linked-Etag header Hugging Face sends for a file it stores
#     in LFS (that is the file's sha256). With none of them it fails rather
#     than pass off an unchecked file.
#   - FILE already there with the right sha256: nothing to do.
#
# Exit status: 0 FILE is complete and verified; 1 download or checksum
# failed (the message says what to do); 2 bad usage.
set -u

url=${1:-}
file=${2:-}
want=${3:-}
if [ -z "$url" ] || [ -z "$file" ]; then
	echo "usage: $0 URL FILE [SHA256]" >&2
	exit 2
fi
part="$file.part"
say() { printf 'models: %s\n' "$*" >&2; }
hex64() { grep -o -i -E '[0-9a-f]{64}' | head -n 1 | tr 'A-F' 'a-f'; }

mkdir -p "$(dirname "$file")" || exit 1

head=$(curl -sfIL --max-time 30 "$url" 2>&1)
rc=$?
if [ $rc -ne 0 ]; then
	say "cannot reach $url (curl exit $rc${head:+: $head})"
	say "check the network and run \`make models\` again, or put a GGUF model"
	say "into $(dirname "$file")/ yourself (any models/*.gguf is served by \`make run\`)"
	exit 1
fi
if [ -z "$want" ]; then
	want=$(curl -sfL --max-time 30 "$url.sha256" 2>/dev/null | hex64)
	[ -n "$want" ] && say "checksum from $url.sha256"
fi
if [ -z "$want" ]; then
	want=$(printf '%s\n' "$head" | tr -d '\r' | grep -i '^x-linked-etag:' |
	       tail -n 1 | hex64)
	[ -n "$want" ] && say "checksum from the server's X-Linked-Etag header"
fi
if [ -z "$want" ]; then
	say "$url publishes no sha256 (no $url.sha256, no X-Linked-Etag header):"
	say "pin the checksum you trust: make models MODEL_SHA256=<sha256>"
	exit 1
fi

if [ -f "$file" ]; then
	have=$(sha256sum "$file" | cut -d' ' -f1)
	if [ "$have" = "$want" ]; then
		say "$file is already there (sha256 $want)"
		exit 0
	fi
	say "$file has sha256 $have, not $want: downloading it again"
fi

if [ -s "$part" ] && [ "$(sha256sum "$part" | cut -d' ' -f1)" = "$want" ]; then
	mv -f "$part" "$file" || exit 1
	say "$file ready (sha256 $want)"
	exit 0
fi
if [ -s "$part" ]; then
	say "resuming $part ($(wc -c < "$part") bytes so far)"
fi
say "downloading $url"
status=$(curl -L --fail --retry 3 --retry-delay 2 --connect-timeout 20 -C - \
	--progress-bar -w '%{http_code}' -o "$part" "$url")
rc=$?
if [ $rc -ne 0 ] && [ "$status" = 416 ]; then
	# Nothing left to resume from: the part is as long as the file or
	# longer, and its checksum was wrong above.
	rm -f "$part"
	say "$part was complete but corrupt, removed: run \`make models\` again"
	exit 1
fi
if [ $rc -ne 0 ]; then
	[ -f "$part" ] && [ ! -s "$part" ] && rm -f "$part"
	say "download failed (curl exit $rc)."
	if [ -s "$part" ]; then
		say "$part keeps $(wc -c < "$part") bytes: run \`make models\` again to resume"
	else
		say "check the network and run \`make models\` again"
	fi
	exit 1
fi

have=$(sha256sum "$part" | cut -d' ' -f1)
if [ "$have" != "$want" ]; then
	rm -f "$part"
	say "checksum mismatch: got $have, want $want; $part removed"
	say "run \`make models\` again to download it afresh"
	exit 1
fi
mv -f "$part" "$file" || exit 1
say "$file ready (sha256 $want)"
