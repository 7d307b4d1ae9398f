"""nats_client.py - a small NATS client for the tests, written from the
protocol (Debian has no python3-nats): plain TCP with INFO / CONNECT / PING /
PONG / SUB / UNSUB / PUB / HPUB / MSG / HMSG, request-reply through an inbox,
the JetStream API ($JS.API.*) as JSON requests, and the object store layout
(OBJ_<bucket>, $O.<bucket>.C.<nuid> chunks, $O.<bucket>.M.<b64url name>
info with Nats-Rollup) that common/vx_jobs_obj.c reads.

    nc = Nats(port); sid, q = nc.subscribe("voxline.results.x")
    nc.js_publish("voxline.tts.jobs", json.dumps(job).encode())
    msg = q.get(timeout=10); json.loads(msg.data)
"""
import base64
import json
import os
import queue
import socket
import threading


class Msg:
    def __init__(self, subject, reply, data, headers):
        self.subject, self.reply, self.data, self.headers = \
            subject, reply, data, headers

    def json(self):
        return json.loads(self.data)


def _parse_headers(raw):
    lines = raw.decode("utf-8", "replace").split("\r\n")
    h = {}
    status = lines[0][len("NATS/1.0"):].strip()
    if status:
        h[":status"] = status
    for ln in lines[1:]:
        if ":" in ln:
            k, v = ln.split(":", 1)
            h[k.strip()] = v.strip()
    return h


class Nats:
    """One connection; a reader thread puts messages on per-sid queues."""

    def __init__(self, port, host="127.0.0.1", timeout=10.0):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.f = self.sock.makefile("rb")
        info = self.f.readline()
        assert info.startswith(b"INFO "), info
        self.info = json.loads(info[5:])
        self.lock = threading.Lock()
        self.subs = {}
        self.next_sid = 1
        self.pongs = queue.Queue()
        self.errors = []
        self._send(b"CONNECT " + json.dumps({
            "verbose": False, "pedantic": False, "headers": True,
            "no_responders": True, "protocol": 1, "lang": "python-test",
            "version": "0"}).encode() + b"\r\n")
        self.sock.settimeout(None)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        self.flush()
        self.inbox = "_INBOX.t%s" % os.urandom(8).hex()
        self._isid, self._iq = self.subscribe(self.inbox + ".*")
        self._n = 0

    def _send(self, data):
        with self.lock:
            self.sock.sendall(data)

    def _read(self):
        try:
            while True:
                line = self.f.readline()
                if not line:
                    break
                if line.startswith(b"MSG ") or line.startswith(b"HMSG "):
                    parts = line.split()
                    hdr = line.startswith(b"HMSG ")
                    subj, sid = parts[1].decode(), int(parts[2])
                    nums = parts[3:]
                    reply = nums[0].decode() if len(nums) == (3 if hdr else 2) else None
                    total = int(nums[-1])
                    hlen = int(nums[-2]) if hdr else 0
                    payload = self.f.read(total + 2)[:total]
                    headers = _parse_headers(payload[:hlen]) if hdr else {}
                    q = self.subs.get(sid)
                    if q is not None:
                        q.put(Msg(subj, reply, payload[hlen:], headers))
                elif line.startswith(b"PING"):
                    self._send(b"PONG\r\n")
                elif line.startswith(b"PONG"):
                    self.pongs.put(True)
                elif line.startswith(b"-ERR"):
                    self.errors.append(line.decode().strip())
        except (OSError, ValueError):
            pass

    def flush(self, timeout=10):
        self._send(b"PING\r\n")
        self.pongs.get(timeout=timeout)

    def subscribe(self, subject):
        """-> (sid, queue of Msg)."""
        with self.lock:
            sid = self.next_sid
            self.next_sid += 1
        q = queue.Queue()
        self.subs[sid] = q
        self._send(f"SUB {subject} {sid}\r\n".encode())
        return sid, q

    def unsubscribe(self, sid):
        self._send(f"UNSUB {sid}\r\n".encode())
        self.subs.pop(sid, None)

    def publish(self, subject, data=b"", headers=None, reply=None):
        r = f" {reply}" if reply else ""
        if headers:
            h = "NATS/1.0\r\n" + "".join(f"{k}: {v}\r\n" for k, v in
                                         headers.items()) + "\r\n"
            hb = h.encode()
            self._send(f"HPUB {subject}{r} {len(hb)} {len(hb) + len(data)}\r\n"
                       .encode() + hb + data + b"\r\n")
        else:
            self._send(f"PUB {subject}{r} {len(data)}\r\n".encode() + data +
                       b"\r\n")

    def request(self, subject, data=b"", headers=None, timeout=10):
        self._n += 1
        reply = f"{self.inbox}.{self._n}"
        self.publish(subject, data, headers, reply)
        while True:
            m = self._iq.get(timeout=timeout)
            if m.subject == reply:
                return m

    def js(self, api, obj=None, timeout=10):
        """A JetStream API call: $JS.API.<api> with a JSON body."""
        m = self.request("$JS.API." + api,
                         json.dumps(obj).encode() if obj is not None else b"",
                         timeout=timeout)
        return m.json()

    def js_publish(self, subject, data, headers=None, timeout=10):
        """Publish into a stream; returns the PubAck ({"stream","seq"})."""
        m = self.request(subject, data, headers, timeout)
        ack = m.json()
        assert "error" not in ack, ack
        return ack

    # ---- object store ----

    @staticmethod
    def _obj_name(name):
        return base64.urlsafe_b64encode(name.encode()).decode()

    def obj_ensure(self, bucket):
        r = self.js("STREAM.CREATE.OBJ_" + bucket, {
            "name": "OBJ_" + bucket,
            "subjects": [f"$O.{bucket}.C.>", f"$O.{bucket}.M.>"],
            "storage": "file", "allow_rollup_hdrs": True, "allow_direct": True,
            "discard": "new", "num_replicas": 1})
        assert "error" not in r or r["error"].get("err_code") == 10058, r

    def obj_put(self, bucket, name, data):
        # A chunk fits a message, and its base64 a STREAM.MSG.GET answer.
        chunk = min(128 * 1024, self.info["max_payload"] * 3 // 4 - 2048)
        nuid = os.urandom(11).hex()
        n = 0
        for off in range(0, len(data), chunk):
            self.js_publish(f"$O.{bucket}.C.{nuid}", data[off:off + chunk])
            n += 1
        info = {"name": name, "bucket": bucket, "nuid": nuid,
                "size": len(data), "chunks": n}
        self.js_publish(f"$O.{bucket}.M.{self._obj_name(name)}",
                        json.dumps(info).encode(), {"Nats-Rollup": "sub"})

    def obj_get(self, bucket, name):
        r = self.js("STREAM.MSG.GET.OBJ_" + bucket, {
            "last_by_subj": f"$O.{bucket}.M.{self._obj_name(name)}"})
        info = json.loads(base64.b64decode(r["message"]["data"]))
        out, seq = b"", 0
        while len(out) < info["size"]:
            r = self.js("STREAM.MSG.GET.OBJ_" + bucket, {
                "seq": seq + 1, "next_by_subj": f"$O.{bucket}.C.{info['nuid']}"})
            out += base64.b64decode(r["message"].get("data", ""))
            seq = r["message"]["seq"]
        return out

    def close(self):
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        self.reader.join(2)
