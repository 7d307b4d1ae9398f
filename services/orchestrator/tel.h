/*
 * tel.h - phone calls: Twilio and Telnyx media streams (/ws/twilio,
 * /ws/telnyx) as a front door of the conversation (conversation.h), and
 * the webhooks that connect a call to them (POST /twilio/voice answers
 * TwiML, POST /telnyx/voice TeXML; tel_http.c).
 *
 * A call is one conversation, the same machine as /ws/chat with another
 * input and output adapter:
 *   in   `start` -> conversation_start at the stream's rate and encoding
 *        (8 kHz mu-law; Telnyx PCMA as A-law), with the call's ids and
 *        custom parameters as the conversation's meta (history) and the
 *        --telephony-greeting said first; `media` payloads (base64) ->
 *        conversation_audio as they are (VAD, STT and TTS are asked for
 *        8 kHz G.711 themselves: no resampling here); `mark` echoes ->
 *        conversation_played; `stop` -> the call ends (conversation_close,
 *        the socket closed with 1000).
 *   out  reply audio is queued and sent by one pacer thread as `media`
 *        events of TEL_FRAME_MS (160 bytes at 8 kHz), one every 20 ms in
 *        real time; after each reply chunk's last frame a `mark` named
 *        "r<reply>:<bytes>" (bytes of that reply up to there), so an echoed
 *        mark says exactly how much of the reply the caller heard; on a
 *        barge-in (`interrupted`) the queue is dropped and `clear` sent, and
 *        marks of the cut reply that come back later are ignored.
 * Bad messages (not JSON, unknown events, bad base64, media before start)
 * are logged and dropped; the call goes on.
 *
 * Threads: the socket callbacks run on the lws service thread, the sink
 * under the conversation's lock, the pacer on its own thread. Lock order:
 * conversation -> call; the pacer's list lock -> call; nothing holding a
 * call's lock calls into the conversation.
 *
 *     tel_start(svc);   // the pacer; before serving
 *     ... routes tel_ws_routes[], tel_routes[] served ...
 *     tel_stop(svc);    // after the server stopped
 */
#ifndef TEL_H
#define TEL_H

#include "orch_service.h"
#include "vx_server.h"

#define TEL_FRAME_MS 20            /* one outgoing media event */
#define TEL_MAX_QUEUE_S 120        /* reply audio queued per call; more is dropped */
#define TEL_MAX_MARKS 4096         /* marks waiting to be sent per call */
#define TEL_MAX_MEDIA_B64 65536    /* bytes of one media payload (base64) */
#define TEL_CATCH_UP_FRAMES 5      /* frames one pacer tick may send late */

/* The pacer thread; 0 or a negative errno. */
int tel_start(orch_service *svc);
void tel_stop(orch_service *svc);

/* /ws/twilio and /ws/telnyx callbacks (see vx_ws_route). */
int tel_twilio_open(vx_wsconn *c, void *user, void **ret_state);
int tel_telnyx_open(vx_wsconn *c, void *user, void **ret_state);
void tel_ws_text(vx_wsconn *c, void *state, const char *text, size_t len);
void tel_ws_binary(vx_wsconn *c, void *state, const void *data, size_t len);
void tel_ws_close(vx_wsconn *c, void *state);

/* POST /twilio/voice and POST /telnyx/voice (tel_http.c). */
void tel_handle_twilio_voice(vx_req *req, void *user);
void tel_handle_telnyx_voice(vx_req *req, void *user);

/* Twilio's request signature: base64(HMAC-SHA1(token, url + the POST
 * parameters sorted by name, each name then value)) into out (29 bytes
 * with the NUL). body is application/x-www-form-urlencoded. 0, -EINVAL
 * on a malformed body, -ENOMEM. (tel_http.c; exposed for tests.) */
int tel_twilio_signature(const char *token, const char *url, const char *body,
			 size_t len, char out[29]);

/* Telnyx's webhook signature (API v2): telnyx-signature-ed25519 is
 * base64(Ed25519(key, telnyx-timestamp "|" body)), the timestamp in Unix
 * seconds, accepted within TEL_TELNYX_TOLERANCE_S of now (replays).
 * tel_telnyx_key_parse turns the portal's base64 public key into its 32
 * raw bytes (-EINVAL otherwise). tel_telnyx_verify gives 0, or -EINVAL
 * with *why set to a static reason. (tel_http.c; exposed for tests.) */
#define TEL_TELNYX_TOLERANCE_S 300
int tel_telnyx_key_parse(const char *b64, unsigned char key[32]);
int tel_telnyx_verify(const unsigned char key[32], const char *timestamp, const char *sig_b64,
		      const char *body, size_t len, long long now, const char **why);

#endif
