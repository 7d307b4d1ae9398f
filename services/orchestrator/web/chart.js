// A small SVG chart of the session's turns: one stacked bar per turn
// (VAD end -> transcript, LLM first token, TTS first audio, the rest of
// voice-to-voice), newest on the right.
const PARTS = [
  ["stt_ms", "Transcript", "#1d4ed8"],
  ["llm_first_token_ms", "LLM first token", "#b45309"],
  ["tts_first_audio_ms", "TTS first audio", "#047857"],
  ["rest", "Other", "#6b7280"],
];
const NS = "http://www.w3.org/2000/svg";

function el(name, attrs, parent) {
  const e = document.createElementNS(NS, name);
  for (const k in attrs) e.setAttribute(k, attrs[k]);
  if (parent) parent.appendChild(e);
  return e;
}

export function median(xs) {
  const v = xs.filter((x) => typeof x === "number").sort((a, b) => a - b);
  if (!v.length) return null;
  const m = v.length >> 1;
  return v.length % 2 ? v[m] : (v[m - 1] + v[m]) / 2;
}

export function renderChart(box, turns) {
  box.textContent = "";
  const shown = turns.filter((t) => typeof t.voice_to_voice_ms === "number").slice(-24);
  if (!shown.length) {
    const p = document.createElement("p");
    p.className = "hint";
    p.textContent = "The chart fills in as you talk.";
    box.appendChild(p);
    return;
  }
  const W = 320, H = 110, pad = 22;
  const max = Math.max(...shown.map((t) => t.voice_to_voice_ms), 1);
  const step = max > 2000 ? 1000 : max > 400 ? 200 : 50;
  const top = Math.ceil(max / step) * step;
  const last = shown[shown.length - 1].voice_to_voice_ms;
  const svg = el("svg", { viewBox: `0 0 ${W} ${H + 14}`, role: "img",
    "aria-label": `Voice-to-voice latency over ${shown.length} turns: last ${Math.round(last)} ms, ` +
      `median ${Math.round(median(shown.map((t) => t.voice_to_voice_ms)))} ms` }, box);
  el("line", { x1: pad, y1: H, x2: W, y2: H, stroke: "#6b7280" }, svg);
  for (const f of [0.5, 1]) {
    const y = H - (H - 8) * f;
    el("line", { x1: pad, y1: y, x2: W, y2: y, stroke: "#d1d5db", "stroke-dasharray": "3 3" }, svg);
    el("text", { x: 0, y: y + 4, "font-size": 9, fill: "#4b5563" }, svg).textContent =
      top * f >= 1000 ? (top * f / 1000).toFixed(1) + " s" : Math.round(top * f) + " ms";
  }
  const bw = Math.min(18, (W - pad) / shown.length - 3);
  shown.forEach((t, i) => {
    let y = H;
    const x = pad + 3 + i * ((W - pad) / shown.length);
    const known = PARTS.slice(0, 3).reduce((s, [k]) => s + (t[k] || 0), 0);
    const vals = { ...t, rest: Math.max(0, t.voice_to_voice_ms - known) };
    for (const [k, , colour] of PARTS) {
      const h = ((vals[k] || 0) / top) * (H - 8);
      if (h <= 0) continue;
      y -= h;
      el("rect", { x, y, width: bw, height: h, fill: colour }, svg);
    }
    el("text", { x: x + bw / 2, y: H + 11, "font-size": 8, "text-anchor": "middle", fill: "#4b5563" }, svg)
      .textContent = t.turn ?? i + 1;
  });
  const legend = document.createElement("ul");
  legend.className = "legend";
  for (const [, label, colour] of PARTS) {
    const li = document.createElement("li");
    const sw = document.createElement("span");
    sw.style.background = colour;
    li.append(sw, label);
    legend.appendChild(li);
  }
  box.appendChild(legend);
}
