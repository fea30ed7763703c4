// Microphone capture: PCM16 little-endian mono at 16 kHz, delivered in fixed-size chunks.
//
//   const mic = new MicCapture({ chunkMs: 100 });
//   mic.addEventListener("chunk", (event) => socket.sendMedia(Kind.AUDIO, event.detail));
//   mic.addEventListener("level", (event) => meter(event.detail.rms));   // ~20 times a second
//   await mic.start();
//
// The browser captures at its own rate (44.1 or 48 kHz); the worklet (mic-worklet.js) filters
// and resamples to exactly 16 kHz, off the main thread.

const TARGET_RATE = 16000;
const LEVEL_HZ = 20;

export class MicCapture extends EventTarget {
  #chunkMs;
  #requestedRate;
  #muted = false;
  #samplesSent = 0;
  #contextRate = null;

  #stream = null;
  #context = null;
  #source = null;
  #node = null;
  #sink = null;
  #starting = null;
  #generation = 0; // bumped by stop(), so a start() still in flight can tell it was cancelled

  /**
   * @param {object} [options]
   * @param {number} [options.chunkMs=100] duration of every "chunk" event's audio
   * @param {number} [options.contextRate] force the AudioContext rate (tests); default: the
   *   device's own rate, which avoids an extra resampling step in the browser
   */
  constructor({ chunkMs = 100, contextRate = undefined } = {}) {
    super();
    this.#chunkMs = chunkMs;
    this.#requestedRate = contextRate;
  }

  get muted() {
    return this.#muted;
  }

  set muted(value) {
    this.#muted = Boolean(value);
    this.#node?.port.postMessage({ type: "mute", value: this.#muted });
  }

  /** The AudioContext's sample rate (kept after stop()), or null before start(). */
  get contextRate() {
    return this.#contextRate;
  }

  /** The microphone's media tracks (stopped by stop()). */
  get tracks() {
    return this.#stream?.getTracks() ?? [];
  }

  /** Total 16 kHz samples emitted in "chunk" events. */
  get samplesSent() {
    return this.#samplesSent;
  }

  /** Ask for the microphone and start streaming. Calling it again while running is a no-op. */
  start() {
    this.#starting ??= this.#start().finally(() => {
      this.#starting = null;
    });
    return this.#starting;
  }

  async #start() {
    if (this.#context) return;
    const generation = this.#generation;
    const stream = await navigator.mediaDevices.getUserMedia({
      audio: {
        echoCancellation: true,
        noiseSuppression: true,
        autoGainControl: true,
        channelCount: 1,
      },
    });
    if (generation !== this.#generation) {
      stream.getTracks().forEach((track) => track.stop());
      return;
    }
    this.#stream = stream;

    const options = { latencyHint: "interactive" };
    if (this.#requestedRate) options.sampleRate = this.#requestedRate;
    const context = new AudioContext(options);
    this.#context = context;
    this.#contextRate = context.sampleRate;
    try {
      await context.audioWorklet.addModule(new URL("./mic-worklet.js", import.meta.url));
      if (generation !== this.#generation) return; // stop() already cleaned up
      this.#source = context.createMediaStreamSource(stream);
      this.#node = new AudioWorkletNode(context, "mic-capture", {
        numberOfInputs: 1,
        numberOfOutputs: 1,
        outputChannelCount: [1],
        // Let the browser mix a stereo device down to mono before the worklet sees it.
        channelCount: 1,
        channelCountMode: "explicit",
        channelInterpretation: "speakers",
        processorOptions: {
          targetRate: TARGET_RATE,
          chunkMs: this.#chunkMs,
          levelHz: LEVEL_HZ,
          muted: this.#muted,
        },
      });
      this.#node.port.onmessage = ({ data }) => this.#onMessage(data);
      // The worklet writes silence; a zero gain to the destination only keeps it pulled in
      // every browser (some do not render nodes that lead nowhere).
      this.#sink = new GainNode(context, { gain: 0 });
      this.#source.connect(this.#node).connect(this.#sink).connect(context.destination);
      await context.resume();
    } catch (error) {
      if (generation !== this.#generation) return; // stop() was called meanwhile
      this.stop();
      throw error;
    }
  }

  #onMessage(data) {
    if (data.type === "chunk") {
      // A chunk may already be in flight when mute is set; muted means no chunk at all.
      if (this.#muted) return;
      this.#samplesSent += data.buffer.byteLength / 2;
      this.dispatchEvent(new CustomEvent("chunk", { detail: data.buffer }));
    } else if (data.type === "level") {
      const detail = this.#muted ? { rms: 0, peak: 0 } : { rms: data.rms, peak: data.peak };
      this.dispatchEvent(new CustomEvent("level", { detail }));
    }
  }

  /** Release the microphone and the audio graph. Safe to call at any time, repeatedly. */
  stop() {
    this.#generation++;
    this.#stream?.getTracks().forEach((track) => track.stop());
    if (this.#node) {
      this.#node.port.onmessage = null;
      this.#node.port.postMessage({ type: "stop" });
      this.#node.port.close();
    }
    this.#source?.disconnect();
    this.#node?.disconnect();
    this.#sink?.disconnect();
    if (this.#context && this.#context.state !== "closed") this.#context.close().catch(() => {});
    this.#stream = this.#context = this.#source = this.#node = this.#sink = null;
  }
}
