// Speech playback: PCM16 little-endian mono (24 kHz) in, jitter-buffered audio out.
//
//   const player = new Player();
//   await player.start();                 // from a user gesture (autoplay policy)
//   socket.addEventListener("audio", (e) => player.enqueue(e.detail));   // an ArrayBuffer
//   socket.addEventListener("interrupted", () => player.flush());  // silent within a quantum
//
// The queue lives in the worklet (player-worklet.js), so playback never waits on the main
// thread; this class converts samples, forwards them, and mirrors the worklet's reports.

export class Player extends EventTarget {
  #sampleRate;
  #prebufferMs;
  #muted = false;

  #context = null;
  #node = null;
  #gain = null;
  #starting = null;
  #generation = 0; // bumped by stop(), so a start() still in flight can tell it was cancelled

  #pending = []; // Float32Arrays enqueued before the worklet was ready
  #oddByte = null; // a trailing byte whose sample continues in the next enqueue()

  // Mirrors of the worklet's reports.
  #queued = 0;
  #speaking = false;
  #flushes = 0;
  #playedAfterFlush = 0;
  #epoch = 0; // flushes sent; reports from before the latest flush are stale

  /**
   * @param {object} [options]
   * @param {number} [options.sampleRate=24000] rate of the PCM given to enqueue()
   * @param {number} [options.prebufferMs=80] audio to hold before starting (jitter buffer)
   */
  constructor({ sampleRate = 24000, prebufferMs = 80 } = {}) {
    super();
    this.#sampleRate = sampleRate;
    this.#prebufferMs = prebufferMs;
  }

  /** Create the audio graph. Calling it again while running is a no-op. */
  start() {
    this.#starting ??= this.#start().finally(() => {
      this.#starting = null;
    });
    return this.#starting;
  }

  async #start() {
    if (this.#context) return;
    const generation = this.#generation;
    let context;
    try {
      // Run the whole graph at the speech rate: no resampling on our side at all.
      context = new AudioContext({ sampleRate: this.#sampleRate, latencyHint: "interactive" });
    } catch {
      // This browser refuses that rate; the worklet then resamples (windowed sinc).
      context = new AudioContext({ latencyHint: "interactive" });
    }
    this.#context = context;
    try {
      await context.audioWorklet.addModule(new URL("./player-worklet.js", import.meta.url));
      if (generation !== this.#generation) return; // stop() already cleaned up
      this.#node = new AudioWorkletNode(context, "pcm-player", {
        numberOfInputs: 0,
        numberOfOutputs: 1,
        outputChannelCount: [1],
        processorOptions: { inputRate: this.#sampleRate, prebufferMs: this.#prebufferMs },
      });
      this.#node.port.onmessage = ({ data }) => this.#onMessage(data);
      this.#gain = new GainNode(context, { gain: this.#muted ? 0 : 1 });
      this.#node.connect(this.#gain).connect(context.destination);
      for (const samples of this.#pending.splice(0)) this.#post(samples);
      await context.resume();
    } catch (error) {
      if (generation !== this.#generation) return; // stop() was called meanwhile
      this.stop();
      throw error;
    }
  }

  /**
   * Queue PCM16 LE mono samples at the constructor's sampleRate.
   * @param {ArrayBuffer|ArrayBufferView} data any length; the caller's buffer is not modified
   */
  enqueue(data) {
    let bytes = ArrayBuffer.isView(data)
      ? new Uint8Array(data.buffer, data.byteOffset, data.byteLength)
      : new Uint8Array(data);
    if (this.#oddByte !== null) {
      // The previous call ended half-way through a sample: stitch it back together.
      const joined = new Uint8Array(bytes.length + 1);
      joined[0] = this.#oddByte;
      joined.set(bytes, 1);
      bytes = joined;
      this.#oddByte = null;
    }
    if (bytes.length % 2) {
      this.#oddByte = bytes[bytes.length - 1];
      bytes = bytes.subarray(0, bytes.length - 1);
    }
    if (!bytes.length) return;

    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const samples = new Float32Array(bytes.length / 2);
    for (let i = 0; i < samples.length; i++) samples[i] = view.getInt16(2 * i, true) / 32768;

    if (this.#node) this.#post(samples);
    else this.#pending.push(samples);
  }

  #post(samples) {
    this.#node.port.postMessage({ type: "push", samples }, [samples.buffer]);
  }

  /** Barge-in: drop everything queued. The worklet is silent within one render quantum. */
  flush() {
    this.#pending = [];
    this.#oddByte = null;
    if (!this.#node) return;
    this.#epoch++;
    this.#node.port.postMessage({ type: "flush" });
  }

  get muted() {
    return this.#muted;
  }

  set muted(value) {
    this.#muted = Boolean(value);
    if (this.#gain) {
      // A 5 ms glide instead of a step, so muting does not click. The queue keeps draining.
      const { currentTime } = this.#context;
      this.#gain.gain.cancelScheduledValues(currentTime);
      this.#gain.gain.setTargetAtTime(this.#muted ? 0 : 1, currentTime, 0.005);
    }
  }

  /** Samples (at sampleRate) still queued, as last reported by the worklet. */
  get queuedSamples() {
    return this.#queued;
  }

  /** True while queued samples are being played out. */
  get speaking() {
    return this.#speaking;
  }

  /** Samples the worklet output between receiving the last flush and its queue being empty. */
  get playedAfterFlush() {
    return this.#playedAfterFlush;
  }

  /** Number of flushes the worklet has acknowledged. */
  get flushes() {
    return this.#flushes;
  }

  #onMessage(data) {
    if (data.epoch < this.#epoch) return; // sent before the latest flush() reached it
    const wasSpeaking = this.#speaking;
    this.#queued = data.queued;
    this.#speaking = data.speaking;
    if (data.type === "flushed") {
      this.#flushes = data.flushes;
      this.#playedAfterFlush = data.playedAfterFlush;
    }
    if (data.type === "flushed" || wasSpeaking !== this.#speaking) {
      this.dispatchEvent(
        new CustomEvent("state", { detail: { queued: this.#queued, speaking: this.#speaking } }),
      );
    }
  }

  /** Stop playback and release the audio graph. Safe to call at any time, repeatedly. */
  stop() {
    this.#generation++;
    this.#pending = [];
    this.#oddByte = null;
    if (this.#node) {
      this.#node.port.onmessage = null;
      this.#node.port.postMessage({ type: "stop" });
      this.#node.port.close();
      this.#node.disconnect();
    }
    this.#gain?.disconnect();
    if (this.#context && this.#context.state !== "closed") this.#context.close().catch(() => {});
    this.#context = this.#node = this.#gain = null;
    // The next start() gets a fresh worklet, whose counters start from zero.
    this.#queued = 0;
    this.#speaking = false;
    this.#flushes = 0;
    this.#playedAfterFlush = 0;
    this.#epoch = 0;
  }
}
