// voxline's web page: a conversation over /ws/chat (docs/websocket.md).
// Talks through the microphone (hands-free or push-to-talk) or typed text,
// shows the conversation as bubbles, plays the reply, and keeps the
// connection, the stages' health, past conversations and settings in view.
import { RATE, VoxAudio } from "./audio.js";
import { median, renderChart } from "./chart.js";

const $ = (id) => document.getElementById(id);
const store = {
  get: (k) => localStorage.getItem("voxline." + k) || "",
  set: (k, v) => (v ? localStorage.setItem("voxline." + k, v) : localStorage.removeItem("voxline." + k)),
};
const STAGE_NAMES = { vad: "voice detection (VAD)", stt: "speech-to-text (STT)", llm: "language model (LLM)", tts: "text-to-speech (TTS)" };
const STAGE_FIX = {
  vad: "Start voxline-vad (`make run` starts every service).",
  stt: "Start voxline-stt (`make run` starts every service).",
  llm: "Start voxline-llm with a model (`make models`) or point it at a server with VOXLINE_LLM_URL=...",
  tts: "Start voxline-tts (`make run` starts every service).",
};
const LATENCY_ROWS = [
  ["stt_ms", "VAD end → transcript"],
  ["llm_first_token_ms", "LLM first token"],
  ["tts_first_audio_ms", "TTS first audio"],
  ["voice_to_voice_ms", "Voice to voice"],
  ["total_ms", "Whole turn"],
];
const SILENCE_TAIL_MS = 800;   // push-to-talk: silence after release ends the turn

const audio = new VoxAudio();
const S = {
  ws: null, ready: false, everReady: false, closing: false,
  convId: store.get("conversation"), retries: 0, retryTimer: null, retryAt: 0,
  user: null, bot: null, turnOpen: false, replyRate: RATE, stopSentAt: 0,
  micOn: false, talking: false, checking: null, soundChecked: false,
  turns: [], pendingText: "", reconnectAfterTurn: false, health: {},
};
// What the browser tests read.
const T = (window.voxline = { events: [], starts: [], audioBytes: 0, errors: [], states: [], sentFrames: 0,
  playedSec: () => audio.playedSec, state: () => $("state").dataset.state, conversation: () => S.convId });

/* ---------- small view helpers ---------- */

function show(el, text, kind) {
  el.hidden = !text;
  el.textContent = text || "";
  if (kind) el.dataset.kind = kind; else delete el.dataset.kind;
}

function setState(state) {
  const labels = { idle: "Idle", listening: "Listening", hearing: "Hearing you", thinking: "Thinking", speaking: "Speaking" };
  if ($("state").dataset.state !== state) T.states.push(state);
  $("state").dataset.state = state;
  $("state-text").textContent = labels[state];
  $("stop").disabled = !(state === "speaking" || state === "thinking");
}

function restingState() { setState(S.micOn ? "listening" : "idle"); }

function setConn(text, ok) {
  $("conn").textContent = text;
  if (ok === undefined) delete $("conn").dataset.ok; else $("conn").dataset.ok = String(ok);
}

function banner(html) {
  const b = $("banner");
  b.hidden = !html;
  b.textContent = "";
  if (html) b.append(...html);
}

function nearBottom() {
  const l = $("log");
  return l.scrollHeight - l.scrollTop - l.clientHeight < 80;
}

function scrollDown(force) {
  const l = $("log");
  if (force || nearBottom()) l.scrollTop = l.scrollHeight;
}

function bubble(role, text, opts = {}) {
  const stick = nearBottom();
  const li = document.createElement("li");
  li.className = "bubble " + role;
  const who = document.createElement("span");
  who.className = "who";
  const kind = role.split(" ")[0];
  who.textContent = kind === "user" ? "You" : kind === "assistant" ? "voxline" : "Error";
  const body = document.createElement("span");
  body.className = "text";
  body.textContent = text;
  li.append(who, body);
  if (opts.reasoning) setReasoning(li, opts.reasoning);
  if (opts.note) note(li, opts.note, opts.noteErr);
  $("log").appendChild(li);
  $("empty").hidden = true;
  if (stick) scrollDown(true);
  return li;
}

function setText(li, text) { li.querySelector(".text").textContent = text; scrollDown(); }

function note(li, text, err) {
  let n = li.querySelector(".note");
  if (!n) { n = document.createElement("span"); li.appendChild(n); }
  n.className = "note" + (err ? " err" : "");
  n.textContent = text;
  scrollDown();
}

function setReasoning(li, text) {
  let d = li.querySelector("details");
  if (!d) {
    d = document.createElement("details");
    const s = document.createElement("summary");
    s.textContent = "Show reasoning";
    d.append(s, document.createElement("p"));
    d.addEventListener("toggle", () => { s.textContent = d.open ? "Hide reasoning" : "Show reasoning"; });
    li.querySelector(".text").after(d);
  }
  d.querySelector("p").textContent = text;
}

function clearLog() {
  $("log").textContent = "";
  $("empty").hidden = false;
  S.user = S.bot = null;
  S.turns = [];
  renderLatency();
}

/* ---------- latency ---------- */

function fmt(ms) { return typeof ms === "number" ? Math.round(ms) + " ms" : "–"; }

function renderLatency() {
  const tb = $("lat-table").tBodies[0];
  tb.textContent = "";
  const last = S.turns[S.turns.length - 1] || {};
  for (const [k, label] of LATENCY_ROWS) {
    const tr = tb.insertRow();
    const th = document.createElement("th");
    th.scope = "row";
    th.textContent = label;
    tr.appendChild(th);
    tr.insertCell().textContent = fmt(last[k]);
    tr.insertCell().textContent = fmt(median(S.turns.map((t) => t[k])));
  }
  renderChart($("chart"), S.turns);
}

/* ---------- the conversation socket ---------- */

function startMessage() {
  const m = { type: "start", sample_rate: RATE, encoding: "pcm16" };
  if (S.convId) m.conversation_id = S.convId;
  // The stored settings: the selects may still be waiting for their lists.
  for (const [k, key] of [["voice", "voice"], ["model", "model"], ["language", "language"], ["system_prompt", "prompt"]]) {
    const v = store.get(key);
    if (v) m[k] = v;
  }
  return m;
}

function connect() {
  clearTimeout(S.retryTimer);
  S.retryTimer = null;
  S.closing = false;
  S.ready = false;
  setConn(S.everReady ? "Reconnecting…" : "Connecting…");
  const ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws/chat");
  S.ws = ws;
  ws.binaryType = "arraybuffer";
  ws.onopen = () => {
    const m = startMessage();
    T.starts.push(m);
    ws.send(JSON.stringify(m));
  };
  ws.onmessage = (m) => {
    if (ws !== S.ws) return;
    if (typeof m.data !== "string") {
      T.audioBytes += m.data.byteLength;
      audio.play(m.data, S.replyRate);
      return;
    }
    let ev;
    try { ev = JSON.parse(m.data); } catch (e) { return; }
    T.events.push(ev);
    if (T.events.length > 1000) T.events.splice(0, 500);
    onEvent(ev);
  };
  ws.onclose = (e) => {
    if (ws !== S.ws) return;
    S.ws = null;
    S.ready = false;
    if (S.closing) return;
    endTurnLocally("The connection dropped during this reply.");
    scheduleReconnect(e.code);
  };
}

function scheduleReconnect(code) {
  const delay = Math.min(10000, 500 * 2 ** Math.min(S.retries, 5)) * (0.8 + 0.4 * Math.random());
  S.retries++;
  S.retryAt = Date.now() + delay;
  S.retryTimer = setTimeout(connect, delay);
  const host = location.host;
  const what = code === 1013 ? "The orchestrator is at capacity (too many conversations)."
    : S.everReady ? `Lost the connection to the orchestrator at ${host}.`
      : `Can't reach the orchestrator at ${host}. Is voxline-orchestrator running? Start the stack with \`make run\`.`;
  setConn("Disconnected", false);
  const now = document.createElement("button");
  now.type = "button";
  now.textContent = "Retry now";
  now.onclick = () => connect();
  banner([`${what} Retrying in ${Math.ceil(delay / 1000)} s…`, now]);
  pollHealth();
}

// Leaves the current socket (and a pending retry): nothing more reaches
// the conversation it was started for.
function disconnect() {
  clearTimeout(S.retryTimer);
  S.retryTimer = null;
  if (S.ws) { S.closing = true; S.ws.close(1000); S.ws = null; }
  S.ready = false;
  audio.stopPlayback();
  S.turnOpen = false;
}

function reconnectNow() {
  // A new start (other conversation or settings) needs a new socket.
  disconnect();
  connect();
}

function endTurnLocally(why) {
  if (!S.turnOpen && !audio.playing) return;
  audio.stopPlayback();
  if (S.bot && why) note(S.bot, why, true);
  S.turnOpen = false;
  S.user = S.bot = null;
  restingState();
}

function send(obj) {
  if (!S.ws || !S.ready) return false;
  S.ws.send(obj instanceof ArrayBuffer ? obj : JSON.stringify(obj));
  return true;
}

async function onReady(ev) {
  const first = !S.everReady;
  S.ready = S.everReady = true;
  S.retries = 0;
  banner(null);
  S.healthText = "";
  setConn("Connected", true);
  pollHealth();
  const changed = ev.conversation_id !== S.convId;
  S.convId = ev.conversation_id;
  store.set("conversation", S.convId);
  if ((first || changed) && ev.turns > 0 && !$("log").children.length) await loadHistory(S.convId);
  refreshConversations();
  if (S.pendingText) { const t = S.pendingText; S.pendingText = ""; sendText(t); }
  restingState();
}

function stageError(ev) {
  const name = STAGE_NAMES[ev.stage];
  if (!name) return `${ev.message || ev.code}`;
  const what = ev.stage === "tts" ? "the reply could not be spoken"
    : ev.stage === "llm" ? "no reply could be written"
      : ev.stage === "stt" ? "what you said could not be transcribed" : "your speech could not be detected";
  return `The ${name} service failed (${ev.code}): ${what}. ${STAGE_FIX[ev.stage]} Your next turn will try again.`;
}

function onError(ev) {
  T.errors.push(ev);
  if (ev.stage === "client" && ev.code === "bad_message" && Date.now() - S.stopSentAt < 2000) return;
  if (STAGE_NAMES[ev.stage]) {
    const msg = stageError(ev);
    if (S.bot) { note(S.bot, "Not spoken: " + msg, true); S.bot.classList.add("unspoken"); }
    else bubble("error", msg);
    $("live").textContent = msg;
    const li = document.querySelector(`#stages li[data-stage="${ev.stage}"]`);
    if (li && ev.code === "unavailable") { li.dataset.status = "down"; li.querySelector("span").textContent = "down"; }
    setTimeout(pollHealth, 500);
    return;
  }
  if (ev.stage === "history") { bubble("error", `This conversation could not be opened: ${ev.message}. Start a new one.`); return; }
  if (ev.code === "at_capacity") return;   // the close (1013) says it and retries
  show($("send-err"), `The orchestrator refused a message (${ev.code}): ${ev.message}`);
}

function onEvent(ev) {
  switch (ev.type) {
  case "ready": onReady(ev); break;
  case "speech_started":
    S.turnOpen = true;
    S.user = bubble("user partial", "…");
    setState("hearing");
    break;
  case "transcript_partial":
    if (!S.user) S.user = bubble("user partial", "");
    setText(S.user, ev.text + " …");
    break;
  case "speech_stopped": setState("thinking"); break;
  case "transcript":
    if (!S.user) S.user = bubble("user", "");
    S.user.classList.remove("partial");
    setText(S.user, ev.text || "(nothing recognised)");
    S.user = null;
    S.bot = null;
    S.turnOpen = true;
    setState("thinking");
    break;
  case "response_delta":
    if (!S.bot) S.bot = bubble("assistant", "");
    S.bot.dataset.full = (S.bot.dataset.full || "") + ev.text;
    setText(S.bot, S.bot.dataset.full);
    break;
  case "reasoning":
    if (!S.bot) S.bot = bubble("assistant", "");
    S.bot.dataset.reasoning = (S.bot.dataset.reasoning || "") + ev.text;
    setReasoning(S.bot, S.bot.dataset.reasoning);
    break;
  case "audio_start":
    S.replyRate = ev.sample_rate || RATE;
    setState("speaking");
    break;
  case "audio_end": break;
  case "interrupted":
    audio.stopPlayback();
    if (S.bot) {
      if (typeof ev.heard === "string") {
        setText(S.bot, ev.heard || "…");
        note(S.bot, ev.heard ? "Interrupted: shown as far as you heard it." : "Interrupted before any of it was heard.");
      } else {
        note(S.bot, "Interrupted.");
      }
      S.bot.dataset.interrupted = "true";
    }
    break;
  case "metrics": onMetrics(ev); break;
  case "error": onError(ev); break;
  }
}

function onMetrics(ev) {
  S.turns.push(ev);
  renderLatency();
  if (S.bot) {
    if (ev.error && ev.error !== "tts" && !S.bot.querySelector(".note")) note(S.bot, `Turn ended by a ${ev.error} error.`, true);
    if (!ev.error) $("live").textContent = "voxline: " + S.bot.querySelector(".text").textContent;
  }
  if (S.user) { S.user.remove(); S.user = null; }   // speech that never became a transcript
  S.bot = null;
  S.turnOpen = false;
  if (!audio.playing) restingState();
  if (S.reconnectAfterTurn) { S.reconnectAfterTurn = false; reconnectNow(); }
  refreshConversations();
}

audio.onidle = () => { if (!S.turnOpen || $("state").dataset.state === "speaking") restingState(); };

/* ---------- typing ---------- */

function sendText(t) {
  if (!send({ type: "text", text: t })) return false;
  audio.stopPlayback();
  if (S.bot) S.bot = null;
  bubble("user", t);
  S.turnOpen = true;
  setState("thinking");
  return true;
}

$("form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const t = $("text").value.trim();
  if (!t) return;
  await audio.context().catch(() => {});   // a user gesture: allows playback
  if (sendText(t)) {
    $("text").value = "";
    show($("send-err"), "");
  } else {
    S.pendingText = t;
    show($("send-err"), "Not sent yet: not connected to the orchestrator. Your message is kept and goes out as soon as the connection is back.");
  }
});

/* ---------- microphone ---------- */

let levelShown = 0;
audio.onframe = (pcm, level) => {
  const now = performance.now();
  if (now - levelShown > 60) { $("level").value = Math.min(1, level * 4); levelShown = now; }
  if (S.checking) S.checking(level);
  const mode = currentMode();
  if (S.micOn && (mode === "handsfree" || S.talking) && send(pcm)) T.sentFrames++;
};

function currentMode() { return document.querySelector('input[name="mode"]:checked').value; }

function micError(err) {
  const msgs = {
    NotAllowedError: "Microphone access is blocked. Allow the microphone for this site (the icon at the left of the address bar), then press Start talking again. You can still type below.",
    SecurityError: "This page cannot use the microphone here: open it over https or from localhost.",
    NotFoundError: "No microphone found. Plug one in or pick another one in Settings, then press Start talking again.",
    NotReadableError: "The microphone could not be started: another application may be using it. Close it or pick another microphone in Settings.",
    OverconstrainedError: "The chosen microphone is gone; the default one will be used. Press Start talking again.",
  };
  if (err.name === "OverconstrainedError") { $("mic-device").value = ""; store.set("mic", ""); }
  show($("mic-msg"), msgs[err.name] || `The microphone failed: ${err.message}`, "error");
}

async function openMic() {
  try {
    await audio.openMic($("mic-device").value);
    await listDevices();
    return true;
  } catch (err) {
    micError(err);
    return false;
  }
}

// Listens until a voice is heard for 0.3 s (then until it is quiet again),
// at most 6 s. Resolves true when the microphone picked up a voice.
function soundCheck() {
  show($("mic-msg"), "Sound check: say a few words, e.g. “hello, can you hear me?”", "info");
  return new Promise((resolve) => {
    let voiced = 0, quiet = 0, frames = 0;
    S.checking = (level) => {
      frames++;
      if (level > 0.02) { voiced++; quiet = 0; } else quiet++;
      const heard = voiced >= 15;
      if ((heard && quiet >= 25) || frames >= 300) {
        S.checking = null;
        resolve(heard);
      }
    };
  }).then((ok) => {
    S.soundChecked = true;
    if (ok) {
      store.set("soundcheck", $("mic-device").value || "default");
      show($("mic-msg"), "Sound check passed: we can hear you.", "ok");
      setTimeout(() => { if ($("mic-msg").dataset.kind === "ok") show($("mic-msg"), ""); }, 5000);
    } else {
      show($("mic-msg"), "We can't hear you. Check that the microphone is not muted, its volume, or pick another one in Settings; then press Sound check again (or Start talking to go on anyway).", "error");
    }
    return ok;
  });
}

async function micOn() {
  await audio.context();
  if (!(await openMic())) return;
  const device = $("mic-device").value || "default";
  if (!S.soundChecked && store.get("soundcheck") !== device) {
    $("mic-label").textContent = "Checking…";
    const ok = await soundCheck();
    if (!ok) { $("mic-label").textContent = labelFor(false); return; }
  }
  S.micOn = true;
  $("mic").setAttribute("aria-pressed", currentMode() === "handsfree" ? "true" : "false");
  $("mic-label").textContent = labelFor(true);
  if (!S.turnOpen) setState("listening");
}

function micOff() {
  S.micOn = false;
  S.talking = false;
  audio.closeMic();
  $("level").value = 0;
  $("mic").setAttribute("aria-pressed", "false");
  $("mic-label").textContent = labelFor(false);
  if (!S.turnOpen && !audio.playing) setState("idle");
}

function labelFor(on) {
  if (currentMode() === "ptt") return on ? "Hold to talk" : "Start talking";
  return on ? "Stop talking" : "Start talking";
}

// A hold by pointer or by Space on the button; only the same source ends it.
function pttDown(how) {
  if (currentMode() !== "ptt" || !S.micOn || S.talking) return;
  S.talking = how;
  $("mic").setAttribute("aria-pressed", "true");
  $("mic-label").textContent = "Talking… release to send";
}

function pttUp(how) {
  if (S.talking !== how) return;
  S.talking = false;
  $("mic").setAttribute("aria-pressed", "false");
  $("mic-label").textContent = labelFor(true);
  const frame = new Int16Array(RATE / 50);   // silence, so the VAD ends the turn
  for (let t = 0; t < SILENCE_TAIL_MS; t += 20) send(frame.slice().buffer);
}

$("mic").addEventListener("click", () => {
  if (currentMode() === "ptt" && S.micOn) return;   // held, not clicked
  if (S.micOn) micOff(); else micOn();
});
$("mic").addEventListener("pointerdown", (e) => {
  if (currentMode() !== "ptt" || !S.micOn) return;
  $("mic").setPointerCapture(e.pointerId);   // the hold survives leaving the button
  pttDown("pointer");
});
for (const ev of ["pointerup", "pointercancel", "lostpointercapture"]) $("mic").addEventListener(ev, () => pttUp("pointer"));
$("mic").addEventListener("keydown", (e) => {
  if (e.key === " " && currentMode() === "ptt" && S.micOn) { e.preventDefault(); if (!e.repeat) pttDown("key"); }
});
$("mic").addEventListener("keyup", (e) => { if (e.key === " " && S.talking === "key") { e.preventDefault(); pttUp("key"); } });
$("mic").addEventListener("blur", () => pttUp("key"));
for (const r of document.querySelectorAll('input[name="mode"]')) {
  r.checked = r.value === (store.get("mode") || "handsfree");
  r.addEventListener("change", () => {
    store.set("mode", currentMode());
    S.talking = false;
    $("mic").setAttribute("aria-pressed", String(S.micOn && currentMode() === "handsfree"));
    $("mic-label").textContent = labelFor(S.micOn);
    show($("mic-msg"), currentMode() === "ptt" ? "Push to talk: hold the button (or Space on it) while you speak." : "", "info");
  });
}

$("soundcheck").addEventListener("click", async () => {
  if (!(await openMic())) return;
  await soundCheck();
  if (!S.micOn) audio.closeMic();
});

$("stop").addEventListener("click", () => {
  S.stopSentAt = Date.now();
  send({ type: "stop" });
  audio.stopPlayback();
  if (S.bot) note(S.bot, "Stopped.");
  restingState();
});

document.addEventListener("keydown", (e) => {
  if (e.key === "Escape" && !$("stop").disabled) $("stop").click();
});

async function listDevices() {
  if (!navigator.mediaDevices || !navigator.mediaDevices.enumerateDevices) return;
  const sel = $("mic-device");
  const want = store.get("mic");
  const devs = (await navigator.mediaDevices.enumerateDevices()).filter((d) => d.kind === "audioinput");
  sel.textContent = "";
  sel.append(new Option("Default microphone", ""));
  devs.forEach((d, i) => { if (d.deviceId && d.deviceId !== "default") sel.append(new Option(d.label || `Microphone ${i + 1}`, d.deviceId)); });
  sel.value = [...sel.options].some((o) => o.value === want) ? want : "";
}

$("mic-device").addEventListener("change", async () => {
  store.set("mic", $("mic-device").value);
  S.soundChecked = false;
  if (audio.micOpen) await openMic();
});

/* ---------- settings ---------- */

async function getJSON(path) {
  const r = await fetch(path, { headers: { Accept: "application/json" } });
  const body = await r.json().catch(() => null);
  if (!r.ok) throw Object.assign(new Error((body && body.error && body.error.message) || r.statusText), { status: r.status });
  return body;
}

function fill(sel, items, saved) {
  const keep = sel.options[0];
  sel.textContent = "";
  sel.append(keep);
  for (const [value, label] of items) sel.append(new Option(label, value));
  if (saved && ![...sel.options].some((o) => o.value === saved)) sel.append(new Option(saved + " (saved)", saved));
  sel.value = saved;
}

async function loadVoices() {
  try {
    const b = await getJSON("/voices");
    const vs = (b.voices || []).map((v) => [v.name, [v.name, v.language, v.gender].filter(Boolean).join(" · ")]);
    fill($("voice"), vs, store.get("voice"));
    show($("voice-msg"), b.default ? `Server default: ${b.default}` : "");
  } catch (e) {
    fill($("voice"), [], store.get("voice"));
    show($("voice-msg"), e.status === 404 ? "Voices unavailable: this orchestrator does not list them; the server default is used."
      : `Voices unavailable (${e.message}); the server default is used.`);
  }
}

async function loadModels() {
  try {
    const b = await getJSON("/v1/models");
    fill($("model"), (b.data || []).map((m) => [m.id, m.id]), store.get("model"));
    show($("model-msg"), "");
  } catch (e) {
    fill($("model"), [], store.get("model"));
    show($("model-msg"), e.status === 404 ? "Models unavailable: this orchestrator does not list them; the server default is used."
      : `Models unavailable (${e.message}); the server default is used.`);
  }
}

function settingChanged(key, el) {
  store.set(key, el.value.trim());
  if (!S.ready) return;                               // the next start carries it
  if (S.turnOpen) S.reconnectAfterTurn = true; else reconnectNow();
}

$("language").value = store.get("language");
$("prompt").value = store.get("prompt");
$("voice").addEventListener("change", () => settingChanged("voice", $("voice")));
$("model").addEventListener("change", () => settingChanged("model", $("model")));
$("language").addEventListener("change", () => settingChanged("language", $("language")));
$("prompt").addEventListener("change", () => settingChanged("prompt", $("prompt")));
$("settings").addEventListener("submit", (e) => e.preventDefault());

/* ---------- past conversations ---------- */

function when(ms) {
  const d = new Date(ms);
  return d.toLocaleString(undefined, { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" });
}

async function refreshConversations() {
  let list;
  try {
    list = (await getJSON("/conversations")).conversations || [];
    show($("convs-err"), "");
  } catch (e) {
    show($("convs-err"), "Past conversations could not be loaded: the orchestrator is not answering. They come back once it does.");
    return;
  }
  const ul = $("convs");
  ul.textContent = "";
  list.sort((a, b) => b.updated_at - a.updated_at);
  for (const c of list) {
    const li = document.createElement("li");
    li.dataset.id = c.id;
    if (c.id === S.convId) li.setAttribute("aria-current", "true");
    const open = document.createElement("button");
    open.type = "button";
    open.className = "open";
    open.textContent = when(c.updated_at);
    const small = document.createElement("small");
    small.textContent = `${c.turns} message${c.turns === 1 ? "" : "s"}`;
    open.appendChild(small);
    open.onclick = () => openConversation(c.id);
    const del = document.createElement("button");
    del.type = "button";
    del.className = "del";
    del.textContent = "✕";
    del.setAttribute("aria-label", `Delete the conversation of ${when(c.updated_at)}`);
    del.onclick = () => deleteConversation(c.id);
    li.append(open, del);
    ul.appendChild(li);
  }
  if (!list.length) {
    const li = document.createElement("li");
    li.className = "hint";
    li.textContent = "None yet.";
    ul.appendChild(li);
  }
}

async function loadHistory(id) {
  let c;
  try {
    c = await getJSON("/conversations/" + encodeURIComponent(id));
  } catch (e) {
    if (e.status !== 404) bubble("error", `The conversation could not be loaded (${e.message}).`);
    return false;
  }
  clearLog();
  for (const t of c.turns || []) {
    if (t.role !== "user" && t.role !== "assistant") continue;
    bubble(t.role, t.content || "", { reasoning: t.reasoning, note: t.interrupted ? "Interrupted." : "" });
    if (t.timings) S.turns.push(t.timings);
  }
  renderLatency();
  scrollDown(true);
  return true;
}

async function openConversation(id) {
  if (id === S.convId && S.ready) return;
  // Off the old conversation first: what is said while this one's history
  // loads must not land in the old one (the page would show it here).
  disconnect();
  setConn("Connecting…");
  S.convId = id;
  store.set("conversation", id);
  await loadHistory(id);
  connect();
  refreshConversations();
}

async function deleteConversation(id) {
  try {
    const r = await fetch("/conversations/" + encodeURIComponent(id), { method: "DELETE" });
    if (!r.ok && r.status !== 404) throw new Error(r.statusText);
  } catch (e) {
    show($("convs-err"), `Could not delete it (${e.message}). Try again once the orchestrator answers.`);
    return;
  }
  if (id === S.convId) newConversation(); else refreshConversations();
}

function newConversation() {
  S.convId = "";
  store.set("conversation", "");
  clearLog();
  reconnectNow();
}

$("new-conv").addEventListener("click", newConversation);

/* ---------- stage status ---------- */

function stageStatus(body, st) {
  const s = body && body.stages && body.stages[st];
  if (s) return { up: s.status === "ok", detail: s.hint || s.detail || s.message || "" };
  const u = body && body.upstreams && body.upstreams[st];
  if (u) return { up: u.healthy > 0, detail: "" };
  return null;
}

async function pollHealth() {
  let body = null;
  try {
    const r = await fetch("/healthz", { cache: "no-store" });
    body = await r.json();
  } catch (e) { body = null; }
  const down = [];
  for (const li of document.querySelectorAll("#stages li")) {
    const st = li.dataset.stage;
    const s = stageStatus(body, st);
    li.dataset.status = !s ? "unknown" : s.up ? "ok" : "down";
    li.querySelector("span").textContent = !s ? "?" : s.up ? "up" : "down";
    li.title = s && s.detail ? s.detail : "";
    if (s && !s.up) down.push(`${STAGE_NAMES[st]}: ${s.detail || STAGE_FIX[st]}`);
  }
  S.health = body;
  const hint = body && (body.hint || body.setup);
  const text = [typeof hint === "string" ? hint : "", ...down].filter(Boolean).join("\n");
  if (S.ready && text !== S.healthText) {
    const pre = document.createElement("pre");
    pre.textContent = text;
    banner(text ? ["Not every stage is up, so turns may fail:", pre] : null);
  }
  if (S.ready) S.healthText = text;
}

/* ---------- start ---------- */

renderLatency();
loadVoices();
loadModels();
listDevices().catch(() => {});
pollHealth();
setInterval(pollHealth, 5000);
(async () => {
  if (S.convId) await loadHistory(S.convId);
  connect();
  refreshConversations();
})();
