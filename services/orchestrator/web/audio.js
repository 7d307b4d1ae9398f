// The page's audio: one AudioContext at 16 kHz for the microphone (through
// the voxline-mic AudioWorklet) and for the reply's PCM16 chunks, played
// back to back as they arrive.
export const RATE = 16000;

export class VoxAudio {
  constructor() {
    this.ctx = null;
    this.stream = null;
    this.source = null;
    this.node = null;
    this.deviceId = "";
    this.onframe = null;      // (ArrayBuffer pcm16, level 0..1)
    this.onidle = null;       // the last scheduled reply audio ended
    this.playAt = 0;
    this.sources = new Set();
    this.playedSec = 0;       // reply audio actually played, this page
    this.scheduledSec = 0;
  }

  async context() {
    if (!this.ctx) {
      this.ctx = new AudioContext({ sampleRate: RATE });
      await this.ctx.audioWorklet.addModule("/static/mic-worklet.js");
    }
    if (this.ctx.state === "suspended") await this.ctx.resume();
    return this.ctx;
  }

  get micOpen() { return !!this.stream; }

  // Opens the microphone (asks permission the first time). Throws the
  // getUserMedia error (NotAllowedError, NotFoundError, ...).
  async openMic(deviceId) {
    const ctx = await this.context();
    if (this.stream && deviceId === this.deviceId) return;
    this.closeMic();
    const audio = { echoCancellation: true, noiseSuppression: true, autoGainControl: true, channelCount: 1 };
    if (deviceId) audio.deviceId = { exact: deviceId };
    this.stream = await navigator.mediaDevices.getUserMedia({ audio });
    this.deviceId = deviceId;
    this.source = ctx.createMediaStreamSource(this.stream);
    this.node = new AudioWorkletNode(ctx, "voxline-mic", { numberOfOutputs: 1 });
    this.node.port.onmessage = (e) => { if (this.onframe) this.onframe(e.data.pcm, e.data.level); };
    const mute = ctx.createGain();
    mute.gain.value = 0;
    this.source.connect(this.node);
    this.node.connect(mute).connect(ctx.destination);   // keeps the node pulled
  }

  closeMic() {
    if (this.stream) this.stream.getTracks().forEach((t) => t.stop());
    if (this.source) this.source.disconnect();
    if (this.node) { this.node.port.onmessage = null; this.node.disconnect(); }
    this.stream = this.source = this.node = null;
  }

  get playing() { return this.sources.size > 0; }

  // Queues one chunk of reply audio (PCM16 little-endian, mono).
  play(buf, rate) {
    if (!this.ctx || buf.byteLength < 2) return;
    const pcm = new Int16Array(buf, 0, buf.byteLength >> 1);
    const ab = this.ctx.createBuffer(1, pcm.length, rate || RATE);
    const ch = ab.getChannelData(0);
    for (let i = 0; i < pcm.length; i++) ch[i] = pcm[i] / 32768;
    const s = this.ctx.createBufferSource();
    s.buffer = ab;
    s.connect(this.ctx.destination);
    this.playAt = Math.max(this.playAt, this.ctx.currentTime + 0.03);
    s.startedAt = this.playAt;
    s.start(this.playAt);
    this.playAt += ab.duration;
    this.scheduledSec += ab.duration;
    this.sources.add(s);
    s.onended = () => {
      if (!this.sources.delete(s)) return;
      this.playedSec += ab.duration;
      if (!this.sources.size && this.onidle) this.onidle();
    };
  }

  // Stops the reply at once; counts what was heard of the chunk playing.
  stopPlayback() {
    const now = this.ctx ? this.ctx.currentTime : 0;
    for (const s of this.sources) {
      if (now > s.startedAt) this.playedSec += Math.min(now - s.startedAt, s.buffer.duration);
      try { s.stop(); } catch (e) { /* not started */ }
    }
    const had = this.sources.size > 0;
    this.sources.clear();
    this.playAt = 0;
    if (had && this.onidle) this.onidle();
  }
}
