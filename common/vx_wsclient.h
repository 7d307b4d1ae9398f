/*
 * vx_wsclient.h - outgoing WebSocket connections (libwebsockets client).
 *
 * One vx_wsclient owns one libwebsockets context (client only, no listener)
 * and ONE service thread it starts itself; any number of connections share
 * it (the orchestrator: ~100 conversations x 4 service sockets). Only the
 * service thread touches sockets. Every other call queues work and wakes it
 * (lws_cancel_service), so all of them are cheap and never block on I/O.
 *
 * Threads: every function may be called from any thread, including from the
 * callbacks, except vx_wsclient_free (never from a callback: it joins the
 * service thread). Callbacks run on the service thread, one at a time; keep
 * them short (copy and hand off), they hold up every connection.
 *
 * Connection lifecycle and ownership:
 *   - vx_wsclient_connect returns at once; the connection is made on the
 *     service thread. Messages sent before on_open are queued and go out
 *     after the handshake (e.g. the JSON config a service expects first).
 *   - on_open comes at most once, then on_text / on_binary once per whole
 *     (reassembled) message, then on_close exactly once, always, for every
 *     successful vx_wsclient_connect, whatever happens (refused, timeout,
 *     closed by either side, vx_wsclient_free). Nothing comes after it.
 *   - The conn is reference-counted. vx_wsclient_connect gives the caller
 *     one reference (when ret is not NULL); the library holds another until
 *     on_close has returned. Drop yours with vx_wsclient_unref (it does not
 *     close); the memory goes when the last reference does. So a sender on
 *     another thread never races with on_close: until it unrefs, its pointer
 *     is valid and sends after the close just return -EPIPE.
 *   - `user` is never touched by the library except to pass it to the
 *     callbacks: keep it valid until on_close has run.
 *   - vx_wsclient_free closes every connection (on_close(-ECANCELED) on the
 *     service thread before it returns). References still held stay valid
 *     for vx_wsclient_unref / send (-EPIPE) / close (no-op) only.
 *
 * Errors passed to on_close: 0 closed cleanly (a close frame from the peer,
 * or vx_wsclient_close was called); -ECONNREFUSED connect failed (nothing
 * listening, name does not resolve); -ETIMEDOUT connect + handshake took
 * longer than connect_timeout_ms; -ECONNRESET the connection was lost
 * without a close frame; -EPROTO the server refused the upgrade (no 101) or
 * broke the protocol; -EMSGSIZE a received message exceeded
 * max_message_bytes; -ENOMEM; -ECANCELED vx_wsclient_free.
 *
 * Limits (each a named default, changeable in vx_wsclient_opts): received
 * message size, unsent bytes queued per connection, connections per client,
 * connect timeout, URL and extra-header length. Host names are resolved on
 * the service thread with getaddrinfo: use IP literals or names in
 * /etc/hosts (localhost) when latency matters. Only ws:// (no TLS).
 * Creating a client raises the RLIMIT_NOFILE soft limit to the hard limit
 * (capped at VX_WSCLIENT_NOFILE_CAP) and sets the process-wide lws log level
 * to errors and warnings.
 *
 *     static void on_text(vx_wsclient_conn *c, void *u, const char *t, size_t n) { ... }
 *     vx_wsclient_callbacks cb = { .on_text = on_text, .on_close = on_close };
 *     vx_wsclient *wc; vx_wsclient_new(&wc);
 *     vx_wsclient_conn *c; vx_wsclient_connect(wc, "ws://127.0.0.1:3002/ws/transcribe", NULL, &cb, me, &c);
 *     vx_wsclient_send_text(c, "{\"sample_rate\":16000}", 21);  ...  vx_wsclient_close(c);
 *     ... after on_close: vx_wsclient_unref(c); vx_wsclient_free(wc);
 */
#ifndef VX_WSCLIENT_H
#define VX_WSCLIENT_H

#include <stddef.h>

#define VX_WSCLIENT_DEFAULT_CONNECT_TIMEOUT_MS 10000
#define VX_WSCLIENT_DEFAULT_MAX_MESSAGE_BYTES (16u << 20) /* received, whole message */
#define VX_WSCLIENT_DEFAULT_MAX_QUEUE_BYTES (16u << 20)   /* unsent, per connection */
#define VX_WSCLIENT_DEFAULT_MAX_CONNECTIONS 4096          /* pending + open, per client */
#define VX_WSCLIENT_CLOSE_TIMEOUT_MS 2000  /* flush + close handshake after vx_wsclient_close */
#define VX_WSCLIENT_FRAGMENT_BYTES 65536   /* larger messages are sent as fragments */
#define VX_WSCLIENT_MAX_URL 2048           /* bytes */
#define VX_WSCLIENT_MAX_EXTRA_HEADERS 4096 /* bytes */
#define VX_WSCLIENT_NOFILE_CAP 65536       /* RLIMIT_NOFILE soft limit raised up to this */

typedef struct vx_wsclient vx_wsclient;
typedef struct vx_wsclient_conn vx_wsclient_conn;

/* Every slot is optional. Called on the service thread; c is valid during
 * the call (take a reference with vx_wsclient_ref to keep it longer). */
typedef struct vx_wsclient_callbacks {
	void (*on_open)(vx_wsclient_conn *c, void *user);
	/* text is NUL-terminated (len excludes the NUL); valid during the call */
	void (*on_text)(vx_wsclient_conn *c, void *user, const char *text, size_t len);
	void (*on_binary)(vx_wsclient_conn *c, void *user, const void *data, size_t len);
	/* err: 0 or negative errno, see the list above */
	void (*on_close)(vx_wsclient_conn *c, void *user, int err);
} vx_wsclient_callbacks;

/* Zero in any field means its default. */
typedef struct vx_wsclient_opts {
	int connect_timeout_ms;   /* TCP connect + upgrade handshake */
	size_t max_message_bytes; /* largest received message; larger closes (-EMSGSIZE) */
	size_t max_queue_bytes;   /* unsent bytes per connection; sends past it: -ENOBUFS */
	int max_connections;      /* pending + open; connects past it: -EMFILE */
} vx_wsclient_opts;

/* Creates the client and starts its service thread. Caller owns *ret and
 * frees it with vx_wsclient_free. Returns 0, -ENOMEM or -EIO (lws failed). */
int vx_wsclient_new(vx_wsclient **ret);
int vx_wsclient_new_opts(const vx_wsclient_opts *opts, vx_wsclient **ret);

/* Closes every connection (each gets on_close(-ECANCELED)), joins the
 * service thread, frees the client. NULL is a no-op. Not from a callback. */
void vx_wsclient_free(vx_wsclient *wc);

/*
 * Starts connecting to url ("ws://host[:port][/path][?query]", IPv6 as
 * [::1]). extra_headers, when not NULL, is added to the upgrade request
 * as is: whole lines, each ending in "\r\n" ("X-Request-Id: abc\r\n").
 * cb is copied. On success the callbacks start (possibly before this
 * returns) and *ret, when ret is not NULL, holds a reference the caller
 * drops with vx_wsclient_unref. Returns 0, -EINVAL (bad url or headers),
 * -EPROTONOSUPPORT (not ws://), -EMFILE (max_connections), -ECANCELED
 * (the client is being freed) or -ENOMEM; no callback comes on failure.
 */
int vx_wsclient_connect(vx_wsclient *wc, const char *url, const char *extra_headers,
			const vx_wsclient_callbacks *cb, void *user,
			vx_wsclient_conn **ret);

/*
 * Queue one whole message (copied) for sending; messages go out in order.
 * Returns 0, -ENOBUFS (the queue would pass max_queue_bytes; nothing was
 * queued, try later), -EMSGSIZE (len alone is over max_queue_bytes),
 * -EPIPE (closed or closing) or -ENOMEM.
 */
int vx_wsclient_send_text(vx_wsclient_conn *c, const char *text, size_t len);
int vx_wsclient_send_binary(vx_wsclient_conn *c, const void *data, size_t len);

/* Requests a clean close: what is queued is sent, then a close frame
 * (1000); gives up after VX_WSCLIENT_CLOSE_TIMEOUT_MS. on_close follows
 * (err 0 unless something failed first). Idempotent; NULL is a no-op. */
void vx_wsclient_close(vx_wsclient_conn *c);

/* References: see the lifecycle above. unref(NULL) is a no-op. */
void vx_wsclient_ref(vx_wsclient_conn *c);
void vx_wsclient_unref(vx_wsclient_conn *c);

/* Bytes queued and not yet handed to the socket (for back-pressure). */
size_t vx_wsclient_queued(vx_wsclient_conn *c);

#endif
