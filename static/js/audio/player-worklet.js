// AudioWorklet side of the speech player: a jitter-buffered queue of Float32 blocks.
//
// processorOptions: { inputRate = 24000, prebufferMs = 80, startTimeoutMs = 100,
//                     reportMs = 50, fadeMs = 2.5 }
// Messages in:
//   { type: "push", samples: Float32Array }  audio at inputRate (resampled here if the
//                                             context runs at another rate)
//   { type: "flush" }                        barge-in: drop the queue before the next quantum
//   { type: "stop" }
// Messages out (every one carries `epoch`, the number of flushes received so far, so the
// main thread can ignore reports that were already in flight when it flushed):
//   { type: "status", queued, speaking, epoch }   on every push, every reportMs while
//                                                 non-empty, when the queue runs dry, and
//                                                 whenever `speaking` flips
//   { type: "flushed", queued, speaking, epoch, flushes, playedAfterFlush }
// `queued` is counted in input-rate samples.

import { SincResampler } from "./resampler.js";

class PcmPlayerProcessor extends AudioWorkletProcessor {
  #inputRate;
  #ratio; // context samples per input sample
  #resampler = null; // only when the context could not run at the input rate

  #blocks = []; // Float32Array blocks at the context rate, oldest first
  #headOffset = 0; // samples of #blocks[0] already played
  #queued = 0; // context-rate samples in #blocks, minus #headOffset

  #prebufferFrames;
  #startTimeoutFrames;
  #reportFrames;
  #fadeFrames;

  #playing = false; // emitting queued samples (false while prebuffering or idle)
  #bufferingSince = 0; // currentFrame when the queue last went from empty to non-empty
  #lastReport = 0;
  #wasSpeaking = false;

  #epoch = 0;
  // After a flush while playing: the head of the old queue, faded out in the next quantum
  // (at most 128 samples, 2.5 ms); the flush is acknowledged once it has been output.
  #fade = null;

  #alive = true;

  constructor(options) {
    super();
    const {
      inputRate = 24000,
      prebufferMs = 80,
      startTimeoutMs = 100,
      reportMs = 50,
      fadeMs = 2.5,
    } = options.processorOptions ?? {};
    this.#inputRate = inputRate;
    this.#ratio = sampleRate / inputRate;
    this.#resampler = this.#newResampler();
    const frames = (ms) => Math.round((sampleRate * ms) / 1000);
    this.#prebufferFrames = frames(prebufferMs);
    this.#startTimeoutFrames = frames(startTimeoutMs);
    this.#reportFrames = frames(reportMs);
    // Never more than one render quantum: a flush must be over within the next quantum.
    this.#fadeFrames = Math.min(128, frames(fadeMs));
    this.port.onmessage = ({ data }) => this.#onMessage(data);
  }

  #newResampler() {
    const same = Math.round(sampleRate) === Math.round(this.#inputRate);
    return same ? null : new SincResampler(this.#inputRate, sampleRate);
  }

  get #speaking() {
    return this.#playing || this.#fade !== null;
  }

  #onMessage(data) {
    switch (data?.type) {
      case "push":
        this.#push(data.samples);
        this.#report();
        break;
      case "flush":
        this.#flush();
        break;
      case "stop":
        this.#alive = false;
        this.port.close();
        break;
    }
  }

  #push(samples) {
    if (!samples?.length) return;
    // Idle -> prebuffering: the start timeout counts from the first sample that arrives.
    if (!this.#playing && this.#queued === 0 && !this.#resampler?.hasPending) {
      this.#bufferingSince = currentFrame;
    }
    if (this.#resampler) {
      this.#append(this.#resample((emit) => this.#resampler.process(samples, emit), samples.length));
    } else {
      this.#append(samples);
    }
  }

  /** Collect what `run(emit)` makes the resampler emit into one block. */
  #resample(run, inputLength) {
    const out = new Float32Array(this.#resampler.maxOutput(inputLength));
    let count = 0;
    run((sample) => {
      out[count++] = sample;
    });
    return out.subarray(0, count);
  }

  #append(block) {
    if (!block.length) return;
    this.#blocks.push(block);
    this.#queued += block.length;
  }

  #flush() {
    this.#epoch++;
    if (this.#playing && this.#queued > 0) {
      // Keep just enough of the head to fade out over at most one quantum (no click).
      const fade = new Float32Array(Math.min(this.#fadeFrames, this.#queued));
      this.#dequeue(fade, 0, fade.length);
      this.#fade = fade;
    }
    this.#blocks = [];
    this.#headOffset = 0;
    this.#queued = 0;
    this.#playing = false;
    this.#resampler = this.#newResampler(); // forget the history of the dropped speech
    if (this.#fade) {
      this.#report(); // receipt; process() acknowledges after the fade
    } else {
      this.#acknowledgeFlush(0);
    }
  }

  #acknowledgeFlush(playedAfterFlush) {
    this.#wasSpeaking = this.#speaking;
    this.port.postMessage({
      type: "flushed",
      queued: this.#inputSamples(this.#queued),
      speaking: this.#speaking,
      epoch: this.#epoch,
      flushes: this.#epoch,
      playedAfterFlush,
    });
  }

  #inputSamples(frames) {
    return Math.round(frames / this.#ratio);
  }

  #report() {
    this.#lastReport = currentFrame;
    this.#wasSpeaking = this.#speaking;
    this.port.postMessage({
      type: "status",
      queued: this.#inputSamples(this.#queued),
      speaking: this.#speaking,
      epoch: this.#epoch,
    });
  }

  /** Move up to `count` queued samples into `out` from `offset`; returns how many. */
  #dequeue(out, offset, count) {
    let written = 0;
    while (written < count && this.#blocks.length) {
      const head = this.#blocks[0];
      const take = Math.min(count - written, head.length - this.#headOffset);
      out.set(head.subarray(this.#headOffset, this.#headOffset + take), offset + written);
      written += take;
      this.#headOffset += take;
      if (this.#headOffset === head.length) {
        this.#blocks.shift();
        this.#headOffset = 0;
      }
    }
    this.#queued -= written;
    return written;
  }

  process(_inputs, outputs) {
    if (!this.#alive) return false;
    const out = outputs[0][0];
    const frames = out.length;
    let written = 0;

    if (this.#fade) {
      // Barge-in: a short linear fade of what was playing, then silence.
      const fade = this.#fade;
      for (let i = 0; i < fade.length; i++) out[i] = fade[i] * ((fade.length - i) / fade.length);
      written = fade.length;
      this.#fade = null;
      this.#acknowledgeFlush(written);
    } else {
      const timedOut = currentFrame - this.#bufferingSince >= this.#startTimeoutFrames;
      // The resampler holds back a few input samples (its filter's look-ahead); let them out
      // when the queue is about to run dry rather than strand the end of the speech.
      const starving = this.#playing ? this.#queued < frames : timedOut;
      if (starving && this.#resampler?.hasPending) {
        this.#append(this.#resample((emit) => this.#resampler.drain(emit), 0));
      }
      if (!this.#playing && this.#queued > 0) {
        // Jitter buffer: start once prebufferMs is queued, or once the first sample has
        // waited startTimeoutMs (so a short final chunk still plays).
        if (this.#queued >= this.#prebufferFrames || timedOut) {
          this.#playing = true;
        }
      }
      if (this.#playing) {
        written = this.#dequeue(out, 0, frames);
        // Underrun or end of speech: go quiet and prebuffer again before resuming.
        if (this.#queued === 0) this.#playing = false;
      }
    }
    out.fill(0, written);
    for (let c = 1; c < outputs[0].length; c++) outputs[0][c].set(out);

    const speaking = this.#speaking;
    if (speaking !== this.#wasSpeaking) {
      this.#report();
    } else if (this.#queued > 0 && currentFrame - this.#lastReport >= this.#reportFrames) {
      this.#report();
    }
    return true;
  }
}

registerProcessor("pcm-player", PcmPlayerProcessor);
