// Speech detection on the microphone's chunks (PCM16 little-endian mono, 16 kHz).
//
//   const speech = new SpeechDetector();
//   speech.addEventListener("speechstart", () => ...); // the first loud chunk
//   speech.addEventListener("speechend", () => ...);   // a second of quiet after speech
//   mic.addEventListener("chunk", (event) => speech.chunk(event.detail));
//
// A chunk is loud when its RMS level reaches the threshold. Quiet time is counted in
// audio (the chunks' own samples), so the result does not depend on when chunks arrive.
// After "speechend" the detector waits for the next loud chunk, which starts again.

export const SPEECH_RMS = 0.02; // RMS level (full scale 1) from which a chunk counts as speech

export class SpeechDetector extends EventTarget {
  #speaking = false;
  #quietMs = 0;

  /**
   * @param {object} [options]
   * @param {number} [options.threshold=SPEECH_RMS] RMS level of a loud chunk
   * @param {number} [options.silenceMs=1000] quiet audio after speech that ends it
   * @param {number} [options.sampleRate=16000] the chunks' sample rate
   */
  constructor({ threshold = SPEECH_RMS, silenceMs = 1000, sampleRate = 16000 } = {}) {
    super();
    this.threshold = threshold;
    this.silenceMs = silenceMs;
    this.sampleRate = sampleRate;
  }

  /** Whether speech has started and not yet ended. */
  get speaking() {
    return this.#speaking;
  }

  /** Feed one chunk of PCM16 audio (an ArrayBuffer). */
  chunk(pcm) {
    const samples = new Int16Array(pcm);
    if (samples.length === 0) return;
    if (rms(samples) >= this.threshold) {
      this.#quietMs = 0;
      if (!this.#speaking) {
        this.#speaking = true;
        this.dispatchEvent(new Event("speechstart"));
      }
      return;
    }
    if (!this.#speaking) return;
    this.#quietMs += (samples.length * 1000) / this.sampleRate;
    if (this.#quietMs >= this.silenceMs) {
      this.#speaking = false;
      this.#quietMs = 0;
      this.dispatchEvent(new Event("speechend"));
    }
  }

  /** Forget the speech in progress (the mic was muted): no "speechend" follows it. */
  reset() {
    this.#speaking = false;
    this.#quietMs = 0;
  }
}

function rms(samples) {
  let sum = 0;
  for (const sample of samples) sum += sample * sample;
  return Math.sqrt(sum / samples.length) / 32768;
}
