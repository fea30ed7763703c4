// AudioWorklet side of the microphone: low-pass, resample to 16 kHz, convert to PCM16 LE,
// cut into fixed-size chunks, and meter the input level.
//
// The resampler lives in resampler.js, shared with player-worklet.js.

import { SincResampler, floatToInt16 } from "./resampler.js";

/**
 * The "mic-capture" processor.
 * processorOptions: { targetRate = 16000, chunkMs = 100, levelHz = 20, muted = false }
 * Posts { type: "chunk", buffer } (ArrayBuffer of Int16 LE, transferred) every chunkMs of
 * output, and { type: "level", rms, peak } about levelHz times a second.
 * Accepts { type: "mute", value } and { type: "stop" }.
 */
class MicCaptureProcessor extends AudioWorkletProcessor {
  #resampler;
  #chunkSamples;
  #chunk; // DataView over the chunk being filled
  #filled = 0;
  #muted;
  #alive = true;
  #emit;

  #levelFrames;
  #levelCount = 0;
  #levelSumSquares = 0;
  #levelPeak = 0;
  #mono = new Float32Array(128);

  constructor(options) {
    super();
    const { targetRate = 16000, chunkMs = 100, levelHz = 20, muted = false } = options.processorOptions ?? {};
    this.#resampler = new SincResampler(sampleRate, targetRate);
    this.#chunkSamples = Math.max(1, Math.round((targetRate * chunkMs) / 1000));
    this.#chunk = this.#newChunk();
    this.#muted = Boolean(muted);
    this.#levelFrames = Math.max(128, Math.round(sampleRate / levelHz));
    this.#emit = (sample) => this.#push(sample);
    this.port.onmessage = ({ data }) => this.#onMessage(data);
  }

  #newChunk() {
    return new DataView(new ArrayBuffer(this.#chunkSamples * 2));
  }

  #onMessage(data) {
    if (data?.type === "mute") {
      this.#muted = Boolean(data.value);
      // A chunk never mixes audio from before and after a mute: drop the partial one.
      this.#filled = 0;
    } else if (data?.type === "stop") {
      this.#alive = false;
      this.port.close();
    }
  }

  #push(sample) {
    if (this.#muted) return; // the resampler keeps running so its history stays current
    this.#chunk.setInt16(this.#filled * 2, floatToInt16(sample), true);
    if (++this.#filled === this.#chunkSamples) {
      const { buffer } = this.#chunk;
      this.port.postMessage({ type: "chunk", buffer }, [buffer]);
      this.#chunk = this.#newChunk();
      this.#filled = 0;
    }
  }

  /** Mix the node's input down to one channel; a missing input counts as silence. */
  #monoInput(input, frames) {
    if (input.length === 1) return input[0];
    if (this.#mono.length !== frames) this.#mono = new Float32Array(frames);
    const mono = this.#mono;
    mono.fill(0);
    for (const channel of input) {
      for (let i = 0; i < frames; i++) mono[i] += channel[i] / input.length;
    }
    return mono;
  }

  #meter(samples) {
    for (let i = 0; i < samples.length; i++) {
      const s = samples[i];
      this.#levelSumSquares += s * s;
      const magnitude = Math.abs(s);
      if (magnitude > this.#levelPeak) this.#levelPeak = magnitude;
    }
    this.#levelCount += samples.length;
    if (this.#levelCount >= this.#levelFrames) {
      const rms = Math.sqrt(this.#levelSumSquares / this.#levelCount);
      const peak = this.#levelPeak;
      this.port.postMessage({
        type: "level",
        rms: this.#muted ? 0 : Math.min(1, rms),
        peak: this.#muted ? 0 : Math.min(1, peak),
      });
      this.#levelCount = 0;
      this.#levelSumSquares = 0;
      this.#levelPeak = 0;
    }
  }

  process(inputs) {
    if (!this.#alive) return false;
    const input = inputs[0] ?? [];
    const frames = input[0]?.length ?? 128;
    const samples = this.#monoInput(input, frames);
    this.#meter(samples);
    this.#resampler.process(samples, this.#emit);
    return true;
  }
}

registerProcessor("mic-capture", MicCaptureProcessor);
