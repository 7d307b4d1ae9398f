// AudioWorklet processor: the microphone at the context's rate, cut into
// 20 ms frames of PCM16 with their RMS level (0..1), posted to the page.
class MicProcessor extends AudioWorkletProcessor {
  constructor() {
    super();
    this.frame = Math.round(sampleRate / 50);
    this.buf = new Int16Array(this.frame);
    this.n = 0;
    this.sum = 0;
  }

  process(inputs) {
    const ch = inputs[0] && inputs[0][0];
    if (!ch) return true;
    for (let i = 0; i < ch.length; i++) {
      const s = Math.max(-1, Math.min(1, ch[i]));
      this.buf[this.n++] = s < 0 ? s * 32768 : s * 32767;
      this.sum += s * s;
      if (this.n === this.frame) {
        const pcm = this.buf.buffer;
        this.port.postMessage({ pcm, level: Math.sqrt(this.sum / this.frame) }, [pcm]);
        this.buf = new Int16Array(this.frame);
        this.n = 0;
        this.sum = 0;
      }
    }
    return true;
  }
}

registerProcessor("voxline-mic", MicProcessor);
