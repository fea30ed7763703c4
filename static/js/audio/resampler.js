// Band-limited resampling shared by the audio worklets (mic capture and the player's
// fallback path), and float-to-PCM16 conversion. Worklet scopes import it as a module.

/** Zeroth-order modified Bessel function of the first kind (for the Kaiser window). */
function besselI0(x) {
  let sum = 1;
  let term = 1;
  const half = x / 2;
  for (let k = 1; k < 64; k++) {
    term *= (half / k) * (half / k);
    sum += term;
    if (term < sum * 1e-16) break;
  }
  return sum;
}

/** Kaiser's empirical window shape parameter for a stopband attenuation in dB. */
function kaiserBeta(attenuationDb) {
  if (attenuationDb > 50) return 0.1102 * (attenuationDb - 8.7);
  if (attenuationDb >= 21) return 0.5842 * (attenuationDb - 21) ** 0.4 + 0.07886 * (attenuationDb - 21);
  return 0;
}

function greatestCommonDivisor(a, b) {
  while (b) [a, b] = [b, a % b];
  return a;
}

/**
 * Streaming band-limited resampler: a Kaiser-windowed sinc low-pass evaluated at the exact
 * fractional position of every output sample (a polyphase FIR). Filtering and rate change
 * are one operation, so no intermediate signal ever aliases, and any pair of integer rates
 * works (44100 -> 16000 as well as 48000 -> 16000, or 24000 -> 48000 for upsampling).
 *
 * Design, relative to the lower of the two rates `low`:
 *   cutoff (-6 dB)  0.4375 * low   (7 kHz when the output is 16 kHz)
 *   passband edge   0.375  * low   (6 kHz)
 *   stopband edge   0.5    * low   (8 kHz: the output Nyquist frequency)
 *   stopband        about attenuationDb (default 60 dB), Kaiser beta from the same formula
 * The number of taps follows Kaiser's estimate N = (A - 7.95) / (2.285 * dw), where dw is
 * the transition width in radians per input sample: 90 taps at 48 kHz -> 16 kHz, 82 taps at
 * 44.1 kHz -> 16 kHz.
 *
 * Time is kept in exact integer arithmetic (input index + remainder over the reduced output
 * rate), so the output count tracks the input duration exactly however long it runs, and the
 * filter history carries across calls, so block boundaries are seamless.
 */
export class SincResampler {
  static MAX_PHASES = 1024;

  #half; // taps on each side of the output instant (2 * #half taps in total)
  #taps;
  #step; // input samples per output sample, as the integer ratio #step / #den
  #den;
  #phases; // rows in #table (the fractional positions it resolves)
  #exactPhases; // true when every fractional position has its own row
  #table; // (#phases + 1) rows of #taps coefficients, row p is for fraction p / #phases

  // Input history: #buffer[0] holds input sample number #bufferStart (negative indices are the
  // zeros that precede the stream), #bufferLength samples are valid.
  #buffer;
  #bufferStart;
  #bufferLength;

  // The next output sample sits at input position #position + #remainder / #den.
  #position = 0;
  #remainder = 0;
  #lastInput = -1; // index of the last real (non-padding) input sample

  constructor(inputRate, outputRate, { attenuationDb = 60 } = {}) {
    const inRate = Math.round(inputRate);
    const outRate = Math.round(outputRate);
    if (!(inRate > 0 && outRate > 0)) throw new RangeError(`bad rates ${inputRate} -> ${outputRate}`);
    const gcd = greatestCommonDivisor(inRate, outRate);
    this.#step = inRate / gcd;
    this.#den = outRate / gcd;

    const low = Math.min(inRate, outRate);
    const cutoff = (0.4375 * low) / inRate; // cycles per input sample
    const transition = (2 * Math.PI * (0.125 * low)) / inRate; // radians per input sample
    const taps = Math.ceil((attenuationDb - 7.95) / (2.285 * transition)) + 1;
    this.#half = Math.max(2, Math.ceil(taps / 2));
    this.#taps = 2 * this.#half;
    const beta = kaiserBeta(attenuationDb);

    // One row per fractional position; exact when the reduced output rate is small enough
    // (160 rows for 44.1 kHz -> 16 kHz, 1 row for 48 kHz -> 16 kHz), else rounded to 1/1024.
    this.#exactPhases = this.#den <= SincResampler.MAX_PHASES;
    this.#phases = this.#exactPhases ? this.#den : SincResampler.MAX_PHASES;
    this.#table = new Float32Array((this.#phases + 1) * this.#taps);
    const i0Beta = besselI0(beta);
    for (let p = 0; p <= this.#phases; p++) {
      const fraction = p / this.#phases;
      const row = p * this.#taps;
      let sum = 0;
      for (let j = 0; j < this.#taps; j++) {
        // Tap j multiplies input sample (position - half + 1 + j), which lies `t` input
        // samples before the output instant.
        const t = fraction + this.#half - 1 - j;
        const x = 2 * cutoff * t;
        const sinc = x === 0 ? 1 : Math.sin(Math.PI * x) / (Math.PI * x);
        const u = t / this.#half;
        const window = Math.abs(u) >= 1 ? 0 : besselI0(beta * Math.sqrt(1 - u * u)) / i0Beta;
        const coefficient = 2 * cutoff * sinc * window;
        this.#table[row + j] = coefficient;
        sum += coefficient;
      }
      // Unity gain at DC for every phase, so the fractional position never modulates level.
      for (let j = 0; j < this.#taps; j++) this.#table[row + j] /= sum;
    }

    this.#buffer = new Float32Array(this.#taps + 1024);
    this.#bufferStart = 1 - this.#half;
    this.#bufferLength = this.#half - 1; // zeros before the first input sample
  }

  /** Total number of FIR taps per output sample. */
  get taps() {
    return this.#taps;
  }

  /** Upper bound on the output count for `frames` more input samples. */
  maxOutput(frames) {
    return Math.ceil(((frames + this.#taps) * this.#den) / this.#step) + 2;
  }

  /** True when some real input has not yet produced all of its output (see drain()). */
  get hasPending() {
    return this.#position <= this.#lastInput;
  }

  /** Feed input samples; `emit(sample)` is called for every output sample, in order. */
  process(input, emit) {
    const slice = this.#buffer.length - this.#taps - 2;
    for (let offset = 0; offset < input.length; offset += slice) {
      this.#append(input.subarray(offset, Math.min(input.length, offset + slice)), emit);
    }
  }

  /** Feed enough zeros to flush out everything the real input still owes. */
  drain(emit) {
    const zeros = new Float32Array(this.#half);
    const last = this.#lastInput;
    this.process(zeros, emit);
    this.#lastInput = last;
  }

  #append(block, emit) {
    const buffer = this.#buffer;
    buffer.set(block, this.#bufferLength);
    this.#bufferLength += block.length;
    this.#lastInput = this.#bufferStart + this.#bufferLength - 1;

    const table = this.#table;
    const taps = this.#taps;
    const lastAvailable = this.#bufferStart + this.#bufferLength - 1;
    // An output needs the inputs up to #position + #half.
    while (this.#position + this.#half <= lastAvailable) {
      const first = this.#position - this.#half + 1 - this.#bufferStart;
      const phase = this.#exactPhases
        ? this.#remainder
        : Math.round((this.#remainder * this.#phases) / this.#den);
      const row = phase * taps;
      let acc = 0;
      for (let j = 0; j < taps; j++) acc += buffer[first + j] * table[row + j];
      emit(acc);

      this.#remainder += this.#step;
      if (this.#remainder >= this.#den) {
        this.#position += Math.floor(this.#remainder / this.#den);
        this.#remainder %= this.#den;
      }
    }

    // Keep only the history the next output can still reach.
    const keepFrom = this.#position - this.#half + 1 - this.#bufferStart;
    if (keepFrom > 0) {
      buffer.copyWithin(0, keepFrom, this.#bufferLength);
      this.#bufferLength -= keepFrom;
      this.#bufferStart += keepFrom;
    }
  }
}

/** Float sample in [-1, 1] to a clamped, rounded Int16 value. */
export function floatToInt16(sample) {
  const clamped = sample > 1 ? 1 : sample < -1 ? -1 : sample;
  return Math.round(clamped < 0 ? clamped * 32768 : clamped * 32767);
}
